"""The publisher's disk while it packs against an earlier release: each variant's copy of the
held file (rebuilt from the store, to delta against) is removed once that variant is packed, so
a multi-GB model needs room for one held copy, not one per variant."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from edge_rollout.publishing import pipeline
from edge_rollout.publishing.request import PublishRequest
from edge_rollout.store import keys
from tests.integration.store_fixtures import build_mlp


class HeldCopies:
    """A progress sink that lists the held copies on disk whenever a file starts packing."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.seen: dict[str, list[str]] = {}

    def start(self, task: str, total: int) -> None:
        if task.startswith("chunk + compress "):
            held = sorted(self.tmp.glob("*/held/*"))
            self.seen[task.removeprefix("chunk + compress ")] = [p.name for p in held]

    def advance(self, task: str, amount: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def test_a_held_copy_is_gone_once_its_variant_is_packed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "key"
    key.write_bytes(keys.private_key_pem(keys.generate_private_key()))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    for version, seed in (("1", 0), ("2", 1)):
        model = build_mlp(tmp_path / f"m{version}.onnx", seed=seed, hidden=64)
        request = PublishRequest(
            model=model, name="m", version=version, store=tmp_path / "store", key=key,
            variants=("fp32", "int8"), runs=1, samples=1,
        )  # fmt: skip
        spy = HeldCopies(work)
        pipeline.publish(request, spy)
    assert spy.seen == {"fp32/model.onnx": ["fp32"], "int8/model.onnx": ["int8"]}
    assert list(work.iterdir()) == []
