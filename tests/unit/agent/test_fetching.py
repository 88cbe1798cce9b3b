"""fetching.classify: each store failure gets the status reason that says what the store did."""

from __future__ import annotations

import pytest

from edge_rollout.store.errors import SHORT_READ, NotFoundError, StoreError, VerificationError
from edge_rollout_agent import fetching


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(NotFoundError("u", "fetch", "HTTP 404", "a"), "NotFound", id="missing"),
        pytest.param(VerificationError("u", "digest", "p", "a"), "ChunkCorrupt", id="corrupt"),
        pytest.param(StoreError("u", SHORT_READ, "p", "a"), "StoreShortRead", id="short"),
        pytest.param(StoreError("u", "fetch", "refused", "a"), "StoreUnreachable", id="away"),
    ],
)
def test_store_failures_are_classified_by_what_the_store_did(
    error: StoreError, reason: str
) -> None:
    assert fetching.classify(error) == reason
