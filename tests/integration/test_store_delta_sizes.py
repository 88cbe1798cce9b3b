"""Update sizes on pairs generated from magika's real model, against baselines run in the same test.

Bytes include the manifest (a manifest delta against the held one). The general tools
(zstd --patch-from, bsdiff) run as subprocesses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

from edge_rollout.testing import models
from tests.fixtures import model_pairs
from tests.integration import store_fixtures

magika_model = store_fixtures.magika_model


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [t for t in ("zstd", "bsdiff") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{missing} missing: run hack/install-debian-packages.sh")


def test_head_only_fine_tune_costs_at_most_zstd_patch_from(tools, magika_model: Path) -> None:
    base = onnx.load(str(magika_model))
    r = model_pairs.compare(
        "head", magika_model.read_bytes(), models.head_only(base).SerializeToString()
    )
    assert r.wire["edge-rollout"] <= r.wire["zstd --patch-from"]


def test_all_weights_drifted_costs_at_most_0_6_of_zstd_patch_from(
    tools, magika_model: Path
) -> None:
    base = onnx.load(str(magika_model))
    r = model_pairs.compare(
        "drift", magika_model.read_bytes(), model_pairs.all_drifted(base).SerializeToString()
    )
    assert r.wire["edge-rollout"] <= 0.6 * r.wire["zstd --patch-from"]


def test_int8_requantization_costs_at_most_1_5_of_bsdiff(tools, magika_model: Path) -> None:
    base = onnx.load(str(magika_model))
    a = model_pairs.int8_of(base)
    b = model_pairs.int8_of(model_pairs.partial_finetune(base))
    r = model_pairs.compare("int8", a, b)
    assert r.wire["edge-rollout"] <= 1.5 * r.wire["bsdiff (+zstd)"]


def test_reexport_with_the_same_weights_costs_at_most_1_1_of_zstd_patch_from(
    tools, magika_model: Path
) -> None:
    base = onnx.load(str(magika_model))
    r = model_pairs.compare(
        "re-export", magika_model.read_bytes(), model_pairs.reexported(base).SerializeToString()
    )
    assert r.wire["edge-rollout"] <= 1.1 * r.wire["zstd --patch-from"]
