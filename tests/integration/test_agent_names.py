"""A real agent with a ModelDeployment named at Kubernetes' limits: a 63-character namespace and
a 253-character name. Before, the agent's state file name went over 255 bytes (`Errno 36`), the
agent crash-looped and the status blamed the variant; now the model installs and goes Ready."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout_agent import layout
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.support import Kubectl
from tests.unit.agent.models import golden_for, linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore

pytestmark = pytest.mark.usefixtures("crds_installed")
KEY = "n" * 63 + "/" + "d" * 253


def test_a_deployment_named_at_the_limits_installs_and_goes_ready(
    control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    store = ScratchStore(tmp_path / "store")
    weights, bias = random_weights(64, 64, seed=0)
    data = linear_model(tmp_path / "m.onnx", weights, bias)
    manifest = store.publish(data, "1.0", golden=golden_for(weights, bias))
    node = f"edge-{random.randrange(10**6)}"
    data_dir = tmp_path / "data"
    with AgentProcess(node, control_plane.kubeconfig, data_dir, tmp_path / "agent.log") as agent:
        wait_for("the EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
        set_models(kubectl, node, [store.desired(manifest, name=KEY)])
        ready = wait_for(
            "Ready under the longest name",
            lambda: (model_status(kubectl, node, KEY) or {}).get("phase") == "Ready",
            log=agent.log,
        )
        assert ready
        status = model_status(kubectl, node, KEY) or {}
        assert status.get("lastError") is None, status
        assert "Errno 36" not in agent.log.read_text()
    assert layout.ModelDir(data_dir, KEY).link("current") is not None
