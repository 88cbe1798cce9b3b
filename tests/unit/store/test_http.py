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
        self,
        status: int,
        body: bytes,
        cut: bool = False,
        content_range: str = "",
        length: int | None = None,
    ) -> None:
        self.status_code, self.body, self.cut = status, body, cut
        self.reason = "reason"
        self.headers = {"Content-Range": content_range} if content_range else {}
        if length is not None:
            self.headers["Content-Length"] = str(length)

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


def rest(start: int) -> FakeResponse:
    return FakeResponse(206, BODY[start:], content_range=f"bytes {start}-{len(BODY) - 1}/*")


def test_a_short_200_is_completed_with_range_when_the_size_is_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that says 1000 bytes is the whole object (Content-Length agrees) is caught by the
    stored size the manifest gives, and the rest is asked for with Range."""
    t, session = transport(FakeResponse(200, BODY[:1000], length=1000), rest(1000))
    assert t.get("chunks/sha256/x", size=len(BODY)) == BODY
    assert session.ranges == [None, "bytes=1000-"]
    assert (
        f"StoreShortRead: http://store/chunks/sha256/x returned 200 with 1000 of {len(BODY)}"
        " bytes; retried with Range" in caplog.text
    )


def test_a_200_cut_short_of_its_content_length_names_both_sizes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t, _ = transport(FakeResponse(200, BODY[:1000], cut=True, length=len(BODY)), rest(1000))
    assert t.get("chunks/sha256/x") == BODY
    assert f"returned 200 with 1000 of {len(BODY)} bytes; retried with Range" in caplog.text


def test_a_store_that_stays_short_is_a_short_read_saying_what_it_did() -> None:
    nothing = FakeResponse(206, b"", content_range=f"bytes 1000-{len(BODY) - 1}/*")
    t, _ = transport(FakeResponse(200, BODY[:1000], length=1000), nothing, nothing)
    with pytest.raises(StoreError) as raised:
        t.get("chunks/sha256/x", size=len(BODY))
    assert raised.value.check == "short-read"
    assert str(raised.value).startswith(
        f"http://store/chunks/sha256/x: short-read check failed: returned 200 with 1000 of"
        f" {len(BODY)} bytes; retried with Range 2 times; the last attempt got 1000 bytes"
    )


def test_without_a_known_size_a_clean_200_is_taken_as_whole() -> None:
    t, session = transport(FakeResponse(200, BODY[:1000], length=1000))
    assert t.get("chunks/sha256/x") == BODY[:1000]
    assert session.ranges == [None]
