"""The agent's log when the apiserver refuses it: one JSON line per record naming its EdgeNode,
the refusal as `403 Forbidden: <the apiserver's message>`, no HTTP headers or body dump.

The agent runs as a process with the real token of a ServiceAccount that has no rights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from edge_rollout.testing.controlplane import ControlPlane
from tests.integration.agent_fixtures import AgentProcess
from tests.support import Kubectl


def unprivileged_kubeconfig(
    plane: ControlPlane, kubectl: Kubectl, namespace: str, path: Path
) -> Path:
    """A kubeconfig for ServiceAccount `nobody` (no RBAC) with a real token from the apiserver."""
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["users"] = [{"name": "nobody", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "nobody"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_refusal_is_one_json_line_naming_the_node_and_the_apiservers_message(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None, namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    kubeconfig = unprivileged_kubeconfig(control_plane, kubectl, namespace, tmp_path / "kc")
    log = tmp_path / "agent.log"
    node = f"edge-{namespace}"
    with AgentProcess(node, kubeconfig, tmp_path / "data", log, ["--log-format=json"]):
        deadline = time.monotonic() + 60
        while "403 Forbidden" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    user = f"system:serviceaccount:{namespace}:nobody"
    expected = (
        f'API server: 403 Forbidden: edgenodes.edgerollout.dev "{node}" is forbidden: User '
        f'"{user}" cannot get resource "edgenodes"'
    )
    # The watch and the status report are refused by two threads: either line may come first.
    refused = [r for r in records if r["message"].startswith(expected)]
    assert refused, records
    assert refused[0]["level"] == "warning"
    assert all(r["object"] == {"kind": "EdgeNode", "name": node} for r in records)
    assert "HTTP response" not in log.read_text()
