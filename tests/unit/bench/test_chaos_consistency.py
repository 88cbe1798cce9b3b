"""The chaos run's final check (bench/chaos/moments.py): a node's entry, its EdgeNode status, the
file its agent serves (sha256 from a real model directory) and the ModelDeployment status must
agree; each kind of disagreement is found and named."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos.moments import deployment_problems, node_problems, served
from edge_rollout.api.manifest import FileEntry, Manifest
from edge_rollout.store import codec
from edge_rollout_agent.layout import ModelDir
from tests.integration.test_agent_disk import flip_byte

KEY = "ns/m"
DATA = b"onnx bytes " * 100


def install(data: Path, version: str, variant: str) -> None:
    """A real model directory, as the agent leaves it, with `current` pointing at it."""
    model_dir = ModelDir(data, KEY)
    assembled = model_dir.base / f".tmp-{version}"
    assembled.mkdir(parents=True)
    (assembled / "model.onnx").write_bytes(DATA)
    entry = FileEntry(path="model.onnx", size=len(DATA), digest=codec.sha256_hex(DATA))
    manifest = Manifest(model="m", version=version, variant=variant, files=[entry])
    model_dir.activate(model_dir.install(assembled, manifest))


def published(version: str, variant: str) -> str:
    return codec.sha256_hex(DATA)


def edgenode(version: str, variant: str, phase: str = "Ready") -> dict[str, Any]:
    return {
        "spec": {"models": [{"name": KEY, "version": version, "variant": variant}]},
        "status": {"models": [{"name": KEY, "phase": phase, "activeVersion": version,
                               "activeVariant": variant}]},
    }  # fmt: skip


def deployment(version: str = "2.0", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "spec": {"model": {"version": version}},
        "status": {"observedGeneration": 3, "phase": "Ready", "stableVersion": version,
                   "counts": {"targeted": 2, "succeeded": 2},
                   "variants": [{"variant": "fp32", "nodes": 1}, {"variant": "fp16", "nodes": 1}]}
        | status,
    }  # fmt: skip


def test_a_node_serving_what_everything_says_is_consistent(tmp_path: Path) -> None:
    install(tmp_path, "2.0", "fp32")
    on_disk = served(tmp_path, KEY)
    assert on_disk[:2] == ("2.0", "fp32")
    assert node_problems("n", KEY, edgenode("2.0", "fp32"), on_disk, "2.0", published) == []
    rolled_back = edgenode("2.0", "fp32", phase="RolledBack")
    assert node_problems("n", KEY, rolled_back, on_disk, "2.0", published) == []


def test_a_flipped_byte_in_the_served_file_is_found_from_disk(tmp_path: Path) -> None:
    install(tmp_path, "2.0", "fp32")
    flip_byte(ModelDir(tmp_path, KEY).base / "2.0-fp32" / "model.onnx", keep_mtime=True)
    found = node_problems("n", KEY, edgenode("2.0", "fp32"), served(tmp_path, KEY), "2.0",
                          published)  # fmt: skip
    assert len(found) == 1
    assert "n: active file sha256" in found[0]
    assert "is not the published" in found[0]


def test_status_entry_and_disk_that_disagree_are_each_named(tmp_path: Path) -> None:
    install(tmp_path, "1.0", "fp32")
    on_disk = served(tmp_path, KEY)
    stale_status = edgenode("2.0", "fp32")  # status and entry say 2.0, disk serves 1.0
    found = node_problems("n", KEY, stale_status, on_disk, "2.0", published)
    assert any("asked 2.0/fp32, serves 1.0/fp32" in f for f in found), found
    assert any("EdgeNode status says ('Ready', '2.0', 'fp32')" in f for f in found), found
    failed = edgenode("1.0", "fp32", phase="Failed")
    assert node_problems("n", KEY, failed, on_disk, "1.0", published) == [
        "n: EdgeNode status says ('Failed', '1.0', 'fp32'), disk serves ('1.0', 'fp32')"
    ]
    nothing = node_problems("n", KEY, {}, served(tmp_path / "empty", KEY), "1.0", published)
    assert nothing[0] == "n: asked None/None, serves / (deployment at 1.0)"


def test_the_deployment_status_must_match_the_nodes() -> None:
    serving = Counter({"fp32": 1, "fp16": 1})
    assert deployment_problems(deployment(), 2, serving) == []
    assert deployment_problems({}, 2, serving) == ["ModelDeployment m is gone"]
    behind = deployment_problems(deployment(observedGeneration=2), 2, serving)
    assert behind == ["observedGeneration 2 behind"]
    rolling = deployment(phase="Progressing", stableVersion="1.0", message="1 of 2 nodes")
    (progressing,) = deployment_problems(rolling, 2, serving)
    assert progressing.startswith("phase Progressing stable '1.0' for spec version 2.0")
    assert deployment_problems(deployment(), 3, serving + Counter({"fp32": 1})) == [
        "counts {'targeted': 2, 'succeeded': 2} for 3 nodes",
        "status variants {'fp32': 1, 'fp16': 1}, nodes serve {'fp32': 2, 'fp16': 1}",
    ]
