"""The API server goes away in the middle of an update: the agent keeps serving, finishes, and
its status catches up when the API server is back.

Uses its own control plane (not the session one), so stopping its kube-apiserver disturbs no
other test; the same apiserver arguments (ports, certificates, etcd) are used to bring it back.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from edge_rollout.testing.controlplane import ControlPlane, stop_process
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.policy import Installed
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import AgentProcess, model_status, set_models, wait_for
from tests.integration.test_agent import phase_is, publish
from tests.support import REPO, Kubectl
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx


def test_update_finishes_while_the_apiserver_is_down(
    nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    slow = {"storeUrl": nginx.url, "delivery": {"maxBandwidth": "300k"}}
    v1 = publish(store, tmp_path, "1.0", 128, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, tmp_path, "2.0", 384, 1.0) | slow
    node = f"edge-{random.randrange(10**6)}"
    with ControlPlane(tmp_path / "plane") as plane:
        kubectl = Kubectl(plane)
        kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        kubectl("wait", "--for=condition=Established", "--timeout=60s",
                "crd/edgenodes.edgerollout.dev")  # fmt: skip
        agent = AgentProcess(node, plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
        with agent:
            wait_for("EdgeNode", lambda: model_status(kubectl, node, "x") is None
                     and kubectl("get", "edgenode", node, check=False).returncode == 0)  # fmt: skip
            set_models(kubectl, node, [v1])
            wait_for("v1 Ready", phase_is(kubectl, node, "Ready", "1.0"), log=agent.log)
            set_models(kubectl, node, [v2])
            wait_for("v2 downloading", lambda: (model_status(kubectl, node, "ns/dep") or {})
                     .get("version") == "2.0", log=agent.log)  # fmt: skip
            apiserver = plane.processes.pop()
            args = [str(a) for a in apiserver.args]  # type: ignore[union-attr]
            stop_process(apiserver)
            model_dir = ModelDir(tmp_path / "data", "ns/dep")
            wait_for("v2 active on disk while offline",
                     lambda: model_dir.link("current") == Installed("2.0", "fp32"), 120,
                     log=agent.log)  # fmt: skip
            assert (tmp_path / "data/models/ns/dep/current/model.onnx").exists()
            with (plane.workdir / "kube-apiserver.log").open("ab") as log:
                restarted = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
            plane.processes.append(restarted)
            wait_for("status to catch up", phase_is(kubectl, node, "Ready", "2.0"), 120,
                     log=agent.log)  # fmt: skip
