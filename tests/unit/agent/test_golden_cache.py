"""The agent keeps golden blobs by digest and fetches only those it does not hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_rollout.api.manifest import ChunkRef
from edge_rollout.store.reader import StoreReader
from edge_rollout_agent import fetching
from tests.unit.agent.models import golden_for, random_weights
from tests.unit.agent.storefixture import ScratchStore


class Counting:
    """A store source that records the chunks it serves."""

    def __init__(self, inner: StoreReader) -> None:
        self.inner = inner
        self.fetched: list[str] = []

    def fetch_chunk(self, ref: ChunkRef, prefix: bytes = b"") -> bytes:
        self.fetched.append(ref.digest)
        return self.inner.fetch_chunk(ref, prefix)


def test_golden_blobs_are_fetched_once_checked_on_reuse_and_pruned(tmp_path: Path) -> None:
    store, data = ScratchStore(tmp_path / "store"), tmp_path / "data"
    weights, bias = random_weights(8, 4, seed=0)
    m1 = store.publish(b"one", "1.0", golden=golden_for(weights, bias))
    m2 = store.publish(b"two", "2.0", golden=golden_for(weights, bias + np.float32(1)))
    assert m1.golden is not None
    assert m2.golden is not None
    source = Counting(store.reader())
    first = fetching.golden_vectors(source, m1, data)  # type: ignore[arg-type]
    assert first is not None
    assert source.fetched == [r.digest for r in m1.golden.blobs()]
    source.fetched.clear()
    assert fetching.golden_vectors(source, m1, data) == first  # type: ignore[arg-type]
    assert source.fetched == []
    inputs, outputs = m2.golden.blobs()
    assert inputs == m1.golden.blobs()[0]  # same sample inputs: one blob for both releases
    fetching.golden_vectors(source, m2, data)  # type: ignore[arg-type]
    assert source.fetched == [outputs.digest]
    kept = {p.name for p in fetching.golden_path(data, "x").parent.iterdir()}
    assert kept == {inputs.digest, outputs.digest}  # nothing installed names 1.0's outputs
    damaged = fetching.golden_path(data, outputs.digest)
    damaged.write_bytes(b"not it")
    source.fetched.clear()
    fetching.golden_vectors(source, m2, data)  # type: ignore[arg-type]
    assert source.fetched == [outputs.digest]
    assert damaged.read_bytes() != b"not it"
