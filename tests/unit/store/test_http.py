"""HTTP transport without sockets: a body cut off mid-way resumes with a Range request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from edge_rollout.store.errors import NotFoundError, StoreError
from edge_rollout.store.http import HttpTransport

BODY = bytes(range(256)) * 40


class FakeResponse:
    def __init__(
        self, status: int, body: bytes, cut: bool = False, content_range: str = ""
    ) -> None:
        self.status_code, self.body, self.cut = status, body, cut
        self.reason = "reason"
        self.headers = {"Content-Range": content_range} if content_range else {}

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        yield self.body
        if self.cut:
            raise requests.exceptions.ChunkedEncodingError("connection broken")


class FakeSession:
    def __init__(self, responses: list[FakeResponse]) -> None:
        self.responses = responses
        self.ranges: list[str | None] = []

    def get(self, url: str, headers: dict[str, str], stream: bool, timeout: object) -> FakeResponse:
        self.ranges.append(headers.get("Range"))
        return self.responses.pop(0)


def transport(*responses: FakeResponse) -> tuple[HttpTransport, FakeSession]:
    session = FakeSession(list(responses))
    return HttpTransport("http://store", session=session, resumes=2), session  # type: ignore[arg-type]


def test_a_cut_body_is_resumed_from_where_it_stopped() -> None:
    t, session = transport(
        FakeResponse(200, BODY[:1000], cut=True),
        FakeResponse(206, BODY[1000:], content_range=f"bytes 1000-{len(BODY) - 1}/{len(BODY)}"),
    )
    assert t.get("chunks/sha256/x") == BODY
    assert session.ranges == [None, "bytes=1000-"]


def test_a_held_prefix_is_completed_with_a_range_request() -> None:
    t, session = transport(
        FakeResponse(206, BODY[10:], content_range=f"bytes 10-{len(BODY) - 1}/*")
    )
    assert t.get("chunks/sha256/x", prefix=BODY[:10]) == BODY
    assert session.ranges == ["bytes=10-"]


def test_a_server_that_ignores_range_restarts_the_body() -> None:
    t, _ = transport(FakeResponse(200, BODY))
    assert t.get("chunks/sha256/x", prefix=b"stale") == BODY


def test_404_is_not_found_and_says_what_to_do() -> None:
    t, _ = transport(FakeResponse(404, b""))
    with pytest.raises(NotFoundError, match="publish it first"):
        t.get("models/m/1/index.json")


def test_giving_up_after_the_resume_budget_names_the_url() -> None:
    t, _ = transport(*[FakeResponse(200, b"x", cut=True) for _ in range(3)])
    with pytest.raises(StoreError, match=r"http://store/chunks/sha256/x: fetch check failed"):
        t.get("chunks/sha256/x")


def test_path_like_names_never_reach_the_network() -> None:
    t, session = transport()
    with pytest.raises(StoreError, match="name check failed"):
        t.get("../etc/passwd")
    assert session.ranges == []
