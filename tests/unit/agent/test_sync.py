"""Installs against a real directory store: first install, incremental update, failures, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.manifest import ChunkRef, GoldenVectors, Manifest
from edge_rollout.content import fetchplan
from edge_rollout.store import codec
from edge_rollout.store.errors import StoreError
from edge_rollout_agent import fetching, sync
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.policy import Installed

from .models import golden_for, linear_model, random_weights
from .storefixture import ScratchStore

CPU = ["CPUExecutionProvider"]


class CountingSource:
    """A store reader that counts chunk fetches and can fail after some of them."""

    def __init__(self, inner: fetching.ChunkSource, fail_after: int | None = None) -> None:
        self.inner = inner
        self.fetched: list[str] = []
        self.fail_after = fail_after

    def fetch_manifest(self, digest: str, held: Manifest | None = None) -> Manifest:
        return self.inner.fetch_manifest(digest, held)

    def fetch_chunk(self, ref: ChunkRef, prefix: bytes = b"") -> bytes:
        if self.fail_after is not None and len(self.fetched) >= self.fail_after:
            raise StoreError("x", "fetch", "connection refused", "retry")
        self.fetched.append(ref.digest)
        return self.inner.fetch_chunk(ref, prefix)

    def fetch_golden(self, manifest: Manifest) -> GoldenVectors | None:
        return self.inner.fetch_golden(manifest)


@pytest.fixture
def store(tmp_path: Path) -> ScratchStore:
    return ScratchStore(tmp_path / "store")


def build(tmp_path: Path, seed: int, bias_shift: float = 0.0) -> tuple[bytes, GoldenVectors]:
    weights, bias = random_weights(128, 128, seed=0)
    bias = bias + bias_shift + seed
    data = linear_model(tmp_path / f"m{seed}-{bias_shift}.onnx", weights, bias)
    return data, golden_for(weights, bias)


def env(tmp_path: Path, source: fetching.ChunkSource, **extra: object) -> sync.Environment:
    values: dict[str, object] = {"disk_free": 10**10, "memory_available": 10**10,
                                 "retry_backoff": 0.0, **extra}  # fmt: skip
    return sync.Environment(tmp_path / "data", source, CPU, **values)  # type: ignore[arg-type]


def test_first_install_then_incremental_update_fetches_only_changed_chunks(
    store: ScratchStore, tmp_path: Path
) -> None:
    v1, g1 = build(tmp_path, 1)
    v2, g2 = build(tmp_path, 2)
    m1, m2 = store.publish(v1, "1.0", golden=g1), store.publish(v2, "2.0", golden=g2)
    first = sync.install(DesiredModel.model_validate(store.desired(m1)),
                         env(tmp_path, store.reader()), runs=2)  # fmt: skip
    assert first.check.ok
    assert first.bytes_reused == 0
    assert first.bytes_fetched == sum(c.stored for c in m1.files[0].chunks)
    counting = CountingSource(store.reader())
    second = sync.install(DesiredModel.model_validate(store.desired(m2)),
                          env(tmp_path, counting), runs=2)  # fmt: skip
    changed = {c.digest for c in m2.files[0].chunks} - {c.digest for c in m1.files[0].chunks}
    golden_new = set(fetchplan.golden_digests(m2)) - set(fetchplan.golden_digests(m1))
    assert golden_new  # new outputs; the golden blobs of 1.0 the node keeps are not fetched again
    assert set(counting.fetched) == changed | golden_new
    assert second.bytes_reused > 0
    assert second.bytes_fetched == sum(c.stored for c in m2.files[0].chunks if c.digest in changed)
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    assert model_dir.link("current") == Installed("2.0", "fp32")
    assert model_dir.link("previous") == Installed("1.0", "fp32")
    stable = tmp_path / "data" / "models" / "ns" / "dep" / "current" / "model.onnx"
    assert stable.read_bytes() == v2


def test_rollback_to_the_kept_version_needs_no_download(
    store: ScratchStore, tmp_path: Path
) -> None:
    v1, _ = build(tmp_path, 1)
    v2, _ = build(tmp_path, 2)
    m1, m2 = store.publish(v1, "1.0"), store.publish(v2, "2.0")
    for manifest in (m1, m2):
        sync.install(DesiredModel.model_validate(store.desired(manifest)),
                     env(tmp_path, store.reader()), runs=1)  # fmt: skip
    sync.switch(DesiredModel.model_validate(store.desired(m1)), tmp_path / "data")
    stable = tmp_path / "data" / "models" / "ns" / "dep" / "current" / "model.onnx"
    assert stable.read_bytes() == v1


def test_golden_mismatch_is_not_activated(store: ScratchStore, tmp_path: Path) -> None:
    v1, g1 = build(tmp_path, 1)
    _, wrong = build(tmp_path, 1, bias_shift=1.0)
    m1 = store.publish(v1, "1.0", golden=g1)
    sync.install(DesiredModel.model_validate(store.desired(m1)), env(tmp_path, store.reader()))
    bad_bytes, _ = build(tmp_path, 3)
    bad = store.publish(bad_bytes, "1.1", golden=wrong)
    with pytest.raises(sync.SyncError) as info:
        sync.install(DesiredModel.model_validate(store.desired(bad)), env(tmp_path, store.reader()))
    assert info.value.reason == "TestVectorMismatch"
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    assert model_dir.link("current") == Installed("1.0", "fp32")
    assert Installed("1.1", "fp32") not in model_dir.installed()


def test_tampered_manifest_is_refused(store: ScratchStore, tmp_path: Path) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    spec = store.desired(m1)
    path = store.root / codec.object_path("manifests", spec["manifestDigest"][7:])
    forged = m1.model_copy(update={"version": "1.0"}).model_dump_json(by_alias=True) + " "
    path.write_bytes(codec.compress(forged.encode()))
    with pytest.raises(sync.SyncError) as info:
        sync.install(DesiredModel.model_validate(spec), env(tmp_path, store.reader()))
    assert info.value.reason == "ManifestInvalid"


def test_flipped_bits_in_a_chunk_are_never_activated(store: ScratchStore, tmp_path: Path) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    chunk = m1.files[0].chunks[1]
    path = store.root / codec.object_path("chunks", chunk.digest)
    plain = bytearray(codec.decompress(path.read_bytes()))
    plain[5] ^= 0x10
    path.write_bytes(codec.compress(bytes(plain)))
    downloader_env = env(tmp_path, store.reader())
    with pytest.raises(sync.SyncError) as info:
        sync.install(DesiredModel.model_validate(store.desired(m1)), downloader_env)
    assert info.value.reason == "ChunkCorrupt"
    assert ModelDir(tmp_path / "data", "ns/dep").link("current") is None


def test_an_interrupted_download_resumes_with_the_missing_chunks_only(
    store: ScratchStore, tmp_path: Path
) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    spec = DesiredModel.model_validate(store.desired(m1))
    failing = CountingSource(store.reader(), fail_after=3)
    with pytest.raises(sync.SyncError) as info:
        sync.install(spec, env(tmp_path, failing, concurrency=1))
    assert info.value.reason == "StoreUnreachable"
    again = CountingSource(store.reader())
    sync.install(spec, env(tmp_path, again))
    total = len({c.digest for c in m1.files[0].chunks})
    assert len(again.fetched) == total - 3


def test_disk_and_memory_are_checked_before_downloading(
    store: ScratchStore, tmp_path: Path
) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    counting = CountingSource(store.reader())
    with pytest.raises(sync.SyncError) as info:
        sync.install(DesiredModel.model_validate(store.desired(m1)),
                     env(tmp_path, counting, disk_free=1000))  # fmt: skip
    assert info.value.reason == "DiskFull"  # transient: space may come back
    assert "free 1000 (+0 reclaimable)" in str(info.value)
    assert counting.fetched == []


def test_measured_memory_from_the_entry_is_checked_before_downloading(
    store: ScratchStore, tmp_path: Path
) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    counting = CountingSource(store.reader())
    desired = DesiredModel.model_validate({**store.desired(m1), "memoryBytes": 8 << 30})
    with pytest.raises(sync.SyncError) as info:
        sync.install(desired, env(tmp_path, counting, memory_available=1 << 30))
    assert info.value.reason == "DoesNotFit"
    assert "memory" in str(info.value)
    assert counting.fetched == []


def test_delta_only_refuses_a_first_install(store: ScratchStore, tmp_path: Path) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    with pytest.raises(sync.SyncError) as info:
        sync.install(DesiredModel.model_validate(store.desired(m1)),
                     env(tmp_path, store.reader()), transfer="DeltaOnly")  # fmt: skip
    assert info.value.reason == "DeltaRequired"


def test_garbage_collection_keeps_current_previous_and_keep_version(
    store: ScratchStore, tmp_path: Path
) -> None:
    for n, version in enumerate(["1.0", "1.1", "1.2", "1.3"]):
        data, _ = build(tmp_path, n)
        manifest = store.publish(data, version)
        sync.install(DesiredModel.model_validate(store.desired(manifest)),
                     env(tmp_path, store.reader()), runs=1)  # fmt: skip
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    deleted = sync.collect_garbage(model_dir, keep_version="1.0")
    assert deleted == [Installed("1.1", "fp32")]
    assert {i.version for i in model_dir.installed()} == {"1.0", "1.2", "1.3"}


def test_rate_limiter_spaces_bytes_out() -> None:
    now = [0.0]
    slept: list[float] = []
    limiter = fetching.RateLimiter(1000, clock=lambda: now[0], sleep=slept.append)
    assert limiter.take(500) == 0.0
    assert limiter.take(500) == pytest.approx(0.5)
    assert slept == [pytest.approx(0.5)]
    assert fetching.RateLimiter(None).take(10**9) == 0.0


def test_seeds_come_from_every_model_on_the_node(store: ScratchStore, tmp_path: Path) -> None:
    v1, _ = build(tmp_path, 1)
    m1 = store.publish(v1, "1.0")
    sync.install(DesiredModel.model_validate(store.desired(m1, name="ns/a")),
                 env(tmp_path, store.reader()), runs=1)  # fmt: skip
    counting = CountingSource(store.reader())
    result = sync.install(DesiredModel.model_validate(store.desired(m1, name="other/b")),
                          env(tmp_path, counting), runs=1)  # fmt: skip
    assert counting.fetched == []
    assert result.bytes_reused == len(v1)
    assert np.frombuffer(v1, np.uint8).size == len(v1)


DEAD: list[Any] = []
"""Guards entered and never left; kept alive, or closing them would run their `finally`."""


def _die_inside(guard: Any) -> None:
    """Enter the guard and never leave it, as a process killed inside onnxruntime would."""
    guard.__enter__()
    DEAD.append(guard)


def test_a_model_the_agent_keeps_dying_on_is_refused_after_three_deaths(tmp_path: Path) -> None:
    desired = DesiredModel(name="ns/dep", model="m", version="1.0", variant="int8",
                           store_url="http://127.0.0.1:1")  # fmt: skip
    for _ in range(sync.CRASHES_BEFORE_GIVING_UP):
        _die_inside(sync.crash_guard(tmp_path, desired))
    with pytest.raises(sync.SyncError) as info, sync.crash_guard(tmp_path, desired):
        pass
    assert info.value.reason == "RuntimeCrashed"
    other = desired.model_copy(update={"version": "1.1"})
    with sync.crash_guard(tmp_path, other):
        pass  # another version starts afresh


def test_a_test_that_returns_clears_the_count(tmp_path: Path) -> None:
    desired = DesiredModel(name="ns/dep", model="m", version="1.0", variant="int8",
                           store_url="http://127.0.0.1:1")  # fmt: skip
    for _ in range(sync.CRASHES_BEFORE_GIVING_UP - 1):
        _die_inside(sync.crash_guard(tmp_path, desired))
    with sync.crash_guard(tmp_path, desired):
        pass
    for _ in range(sync.CRASHES_BEFORE_GIVING_UP - 1):
        _die_inside(sync.crash_guard(tmp_path, desired))
    with sync.crash_guard(tmp_path, desired):
        pass
