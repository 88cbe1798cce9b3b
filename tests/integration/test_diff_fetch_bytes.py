"""`edge-rollout diff -o json` against what nginx served to a real agent, byte for byte.

Two releases of a small MLP published with the real publisher into a store nginx serves; a real
`edge-rollout-agent` process installs the first, then updates to the second. The bodies nginx
logged (`$body_bytes_sent`, in the default combined log format) for each step must add up to
`diff`'s `firstInstall.fetchBytes` and `fetchBytes`.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.store.reader import StoreReader
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.integration.store_fixtures import cli
from tests.support import Kubectl

nginx = store_fixtures.nginx
pytestmark = pytest.mark.usefixtures("crds_installed")

LOG_LINE = re.compile(r'"GET (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<bytes>\d+) ')


def served(log: Path, start: int) -> tuple[int, list[str]]:
    """Body bytes nginx sent after byte offset `start` of its access log, and the requests."""
    lines = log.read_bytes()[start:].decode().splitlines()
    hits = [m for line in lines if (m := LOG_LINE.search(line))]
    assert len(hits) == len(lines), f"unparsed access log lines: {lines}"
    return sum(int(m["bytes"]) for m in hits), [f"{m['status']} {m['bytes']} {m['path']}"
                                                 for m in hits]  # fmt: skip


def diff_json(store: str, key: Path, old: str, new: str, capsys: Any) -> dict[str, Any]:
    capsys.readouterr()
    argv = ["diff", old, new, "--store", store, "--public-key", f"{key}.pub", "-o", "json"]
    assert cli(*argv) == 0
    return dict(json.loads(capsys.readouterr().out))


def entry(reader: StoreReader, url: str, key: Path, version: str) -> dict[str, Any]:
    release = reader.fetch_release("mlp", version)
    variant = release.variant("fp32")
    assert variant is not None
    return {"name": "ns/dep", "model": "mlp", "version": version, "variant": "fp32",
            "manifestDigest": variant.manifest_digest, "storeUrl": url,
            "publicKey": Path(f"{key}.pub").read_text()}  # fmt: skip


def ready(kubectl: Kubectl, node: str, version: str) -> Any:
    def probe() -> Any:
        status = model_status(kubectl, node, "ns/dep")
        ok = status and status["phase"] == "Ready" and status.get("activeVersion") == version
        return status if ok else None

    return probe


def test_diff_fetch_bytes_equal_what_nginx_served_to_a_real_agent(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    nginx: store_fixtures.Nginx,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = tmp_path / "keys" / "release.key"
    assert cli("keygen", str(key)) == 0
    v1 = store_fixtures.build_mlp(tmp_path / "v1.onnx", hidden=512)
    v2 = store_fixtures.build_mlp(tmp_path / "v2.onnx", hidden=512, seed=1, base_seed=0, scale=1e-3)
    for model, version in ((v1, "1"), (v2, "2")):
        argv = ["--variants", "fp32", "--store", str(nginx.root), "--key", str(key)]
        assert cli("publish", str(model), "--name", "mlp", "--version", version, *argv) == 0
    first = diff_json(nginx.url, key, "mlp@1", "mlp@1", capsys)["variants"][0]["firstInstall"]
    update = diff_json(nginx.url, key, "mlp@1", "mlp@2", capsys)["variants"][0]
    parts = update["breakdown"]
    assert all(parts[k] > 0 for k in ("manifest", "manifestSignature", "tensorDeltas")), update
    assert first["breakdown"]["goldenVectors"] > 0, first
    reader = StoreReader.open(nginx.url, Path(f"{key}.pub").read_text())
    node = f"edge-{random.randrange(10**6)}"
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
    want1, want2 = (entry(reader, nginx.url, key, v) for v in ("1", "2"))
    with agent:
        wait_for("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
        start = nginx.access_log.stat().st_size
        set_models(kubectl, node, [want1])
        wait_for("v1 Ready", ready(kubectl, node, "1"), log=agent.log)
        got, requests = served(nginx.access_log, start)
        assert got == first["fetchBytes"], (first, requests)
        start = nginx.access_log.stat().st_size
        set_models(kubectl, node, [want2])
        wait_for("v2 Ready", ready(kubectl, node, "2"), log=agent.log)
        got, requests = served(nginx.access_log, start)
        assert got == update["fetchBytes"], (update, requests)
    print(json.dumps({"firstInstall": first, "update": update}))
