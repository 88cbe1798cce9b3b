"""`content.fetchplan`: every kind of byte an agent downloads is counted, each once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.manifest import ChunkRef, FileEntry, GoldenRef, Manifest
from edge_rollout.content import fetchplan


def ref(n: int, stored: int = 10) -> ChunkRef:
    return ChunkRef(digest=f"{n:064x}", size=stored * 2, stored=stored)


def manifest(chunks: list[int], golden: int | None = 99, version: str = "1") -> Manifest:
    refs = [ref(c, 10 + c) for c in chunks]
    entry = FileEntry(path="model.onnx", size=sum(r.size for r in refs), digest="f" * 64,
                      chunks=refs)  # fmt: skip
    gold = GoldenRef(blob=ref(golden, 500), cases=2) if golden is not None else None
    return Manifest(model="m", version=version, variant="fp32", files=[entry], golden=gold)


def test_first_install_counts_manifest_signature_golden_and_every_distinct_chunk() -> None:
    wanted = manifest([1, 2, 2, 3])
    _, cost = fetchplan.plan(None, wanted, manifest_bytes=700, signature_bytes=88)
    expected = {"manifest": 700, "manifestSignature": 88, "goldenVectors": 500, "chunks": 36}
    assert cost.as_json() == expected | {"tensorDeltas": 0, "gapDeltas": 0}
    assert cost.total == 700 + 88 + 500 + 36
    assert cost.chunk_count == 3


def test_an_update_fetches_only_new_chunks_and_golden_blobs_not_held() -> None:
    held, wanted = manifest([1, 2], golden=98), manifest([2, 3], golden=99, version="2")
    _, cost = fetchplan.plan(held, wanted, manifest_bytes=50, signature_bytes=88)
    assert (cost.chunks, cost.golden) == (13, 500)
    _, kept = fetchplan.plan(held, wanted, manifest_bytes=50, signature_bytes=88,
                             held_golden=frozenset({f"{99:064x}"}))  # fmt: skip
    assert kept.golden == 0
    _, off = fetchplan.plan(held, wanted, manifest_bytes=50, signature_bytes=88, with_golden=False)
    assert off.golden == 0


def test_no_golden_vectors_cost_nothing() -> None:
    _, cost = fetchplan.plan(None, manifest([1], golden=None), manifest_bytes=1, signature_bytes=0)
    assert cost.golden == 0


@given(st.lists(st.integers(1, 40), min_size=1, max_size=20),
       st.lists(st.integers(1, 40), min_size=1, max_size=20))  # fmt: skip
def test_total_is_the_sum_of_its_parts_and_never_above_a_first_install(
    old: list[int], new: list[int]
) -> None:
    wanted = manifest(new, version="2")
    _, update = fetchplan.plan(manifest(old), wanted, manifest_bytes=0, signature_bytes=88)
    _, first = fetchplan.plan(None, wanted, manifest_bytes=0, signature_bytes=88)
    assert update.total == sum(update.as_json().values())
    assert update.total <= first.total
    assert update.chunks == sum(10 + c for c in set(new) - set(old))
