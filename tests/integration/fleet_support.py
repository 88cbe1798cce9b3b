"""Shared by the operator-level integration tests: a signed index-only store, the operator under
KopfRunner, waiting, and reading a deployment's EdgeNode entries.

Import the fixtures into a test module (`operator = fleet_support.operator`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from edge_rollout.api.manifest import FileEntry, Manifest
from edge_rollout.api.release import Release
from edge_rollout.store import codec, keys
from edge_rollout.store.writer import DirectoryStore
from tests.support import Kubectl, kopf_operator
from tests.unit.core.fixtures import release

OPERATOR_ARGS = ["run", "-A", "--standalone", "-m", "edge_rollout.controller.handlers"]


def publish_index_store(root: Path, versions: Iterable[str]) -> tuple[Path, str]:
    """A signed store of model `m` (the core fixtures' four variants per version) whose manifests
    are stubs: operator-level tests read only the signed index. Returns (root, public key PEM)."""
    key = keys.generate_private_key()
    directory = DirectoryStore(root)
    for version in versions:
        directory.publish(with_stored_manifests(directory, release(version)), key)
    return root, keys.public_key_pem(key.public_key())


def with_stored_manifests(directory: DirectoryStore, index: Release) -> Release:
    """The release with a stub manifest stored for each variant, as the writer requires."""
    variants = []
    for variant in index.variants:
        empty = FileEntry(path="model.onnx", size=0, digest=codec.sha256_hex(b""))
        manifest = Manifest(
            model=index.model, version=index.version, variant=variant.name, files=[empty]
        )
        digest, _ = directory.put_manifest(manifest)
        variants.append(variant.model_copy(update={"manifest_digest": digest}))
    return index.model_copy(update={"variants": variants})


@pytest.fixture
def operator(crds_installed: None) -> Iterator[KopfRunner]:
    """The operator in-process, replanning every second."""
    os.environ["EDGE_ROLLOUT_REPLAN_SECONDS"] = "1"
    with kopf_operator(OPERATOR_ARGS, timeout=120) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def wait_for(check: Callable[[], Any], what: str = "", timeout: float = 120.0) -> Any:
    """Poll `check` until it returns something true; fail with the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or check}: last {value!r}")


def model_deployment(
    namespace: str, store: Path, public_key: str, labels: dict[str, str], **strategy: Any
) -> dict[str, Any]:
    """ModelDeployment `namespace/m` of model m@1.0 from the `file://` store at `store`, on the
    nodes with `labels`, with `strategy` fields if any."""
    spec: dict[str, Any] = {
        "model": {
            "name": "m",
            "version": "1.0",
            "store": {"url": f"file://{store}", "publicKey": public_key},
        },
        "nodeSelector": {"matchLabels": labels},
    }
    if strategy:
        spec["strategy"] = strategy
    return {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": spec,
    }


def status(kubectl: Kubectl, namespace: str, name: str = "m") -> dict[str, Any]:
    """The ModelDeployment's status ({} before the operator wrote one)."""
    out = kubectl("get", "mdep", name, "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def node_events(kubectl: Kubectl, node: str, reason: str) -> list[dict[str, Any]]:
    """Events of `reason` about the object named `node` (its Node or EdgeNode), any namespace."""
    out = kubectl(
        "get", "events", "-A", "--field-selector",
        f"reason={reason},involvedObject.name={node}", "-o", "json",
    ).stdout  # fmt: skip
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return found


def entries(kubectl: Kubectl, namespace: str, name: str = "m") -> dict[str, dict[str, Any]]:
    """node -> the EdgeNode entry of ModelDeployment `namespace/name`."""
    listing = json.loads(kubectl("get", "edgenodes", "-o", "json").stdout)
    return {
        item["metadata"]["name"]: entry
        for item in listing["items"]
        for entry in item.get("spec", {}).get("models", [])
        if entry["name"] == f"{namespace}/{name}"
    }


def in_flight(kubectl: Kubectl, namespace: str, version: str, name: str = "m") -> int:
    """Nodes asked for `version` that do not yet serve it Ready (one consistent listing)."""
    listing = json.loads(kubectl("get", "edgenodes", "-o", "json").stdout)
    key = f"{namespace}/{name}"
    count = 0
    for item in listing["items"]:
        wanted = [e for e in item.get("spec", {}).get("models", []) if e["name"] == key]
        if not wanted or wanted[0]["version"] != version:
            continue
        reported = [m for m in item.get("status", {}).get("models", []) if m["name"] == key]
        serving = (
            reported
            and reported[0].get("phase") == "Ready"
            and reported[0].get("activeVersion") == version
        )
        count += 0 if serving else 1
    return count


class InFlightMonitor:
    """Samples `in_flight` in the background; `peak` is the most seen at once."""

    def __init__(self, kubectl: Kubectl, namespace: str, version: str) -> None:
        self.kubectl, self.namespace, self.version = kubectl, namespace, version
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InFlightMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, in_flight(self.kubectl, self.namespace, self.version))
            self.samples += 1
            self._stop.wait(0.2)
