"""A real agent process, the real kube-apiserver and nginx: an update window that closes in the
middle of a download (issue 14.6).

The window is HH:MM, so the test lines the download up with a minute boundary instead of moving
any clock: it waits until the second hand is at :45-:50, then writes an entry whose window is
open all day except the next minute (endTime = the next minute, startTime = the one after, read
in Asia/Kathmandu, UTC+05:45, so the zone conversion is exercised too). A 10 kB/s
`delivery.maxBandwidth` makes the download outlast the boundary. No test seam is needed.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout_agent.layout import ModelDir
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import AgentProcess, edgenode, model_status, set_models
from tests.integration.agent_fixtures import wait_for as wait_until
from tests.support import Kubectl
from tests.unit.agent.models import golden_for, linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx
pytestmark = pytest.mark.usefixtures("crds_installed")
ZONE = "Asia/Kathmandu"


def chunk_paths(log: Path) -> list[str]:
    """The chunk objects nginx served, in order (one line per request)."""
    return [line.split('"')[1].split()[1] for line in log.read_text().splitlines()
            if "/chunks/" in line]  # fmt: skip


def closing_window() -> tuple[dict[str, str], datetime, datetime]:
    """A window closed only during the next whole minute: (window, closes, opens) in UTC."""
    while not 45 <= datetime.now(UTC).second <= 50:
        time.sleep(0.2)
    closes = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    opens = closes + timedelta(minutes=1)
    local = ZoneInfo(ZONE)
    window = {"startTime": opens.astimezone(local).strftime("%H:%M"),
              "endTime": closes.astimezone(local).strftime("%H:%M"), "timeZone": ZONE}  # fmt: skip
    return window, closes, opens


def status(kubectl: Kubectl, node: str) -> dict[str, Any]:
    return model_status(kubectl, node, "ns/dep") or {}


def test_a_window_closing_mid_download_pauses_then_resumes_and_activates_inside_it(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    weights, bias = random_weights(256, 256, seed=3)
    manifest = store.publish(linear_model(tmp_path / "m.onnx", weights, bias), "2.0",
                             golden=golden_for(weights, bias))  # fmt: skip
    node = f"edge-{random.randrange(10**6)}"
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
    with agent:
        wait_until("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
        window, closes, opens = closing_window()
        entry = store.desired(manifest, storeUrl=nginx.url, window=window,
                              delivery={"maxBandwidth": "10k"})  # fmt: skip
        set_models(kubectl, node, [entry])
        wait_until("the download to start", lambda: status(kubectl, node).get("bytesFetched"),
                   timeout=15, log=agent.log)  # fmt: skip
        assert datetime.now(UTC) < closes, "the download must be running when the window closes"
        paused = wait_until("Pending/OutsideWindow after the window closed", lambda: (
            (s := status(kubectl, node)).get("lastError", {}).get("reason") == "OutsideWindow"
            and s), timeout=(closes - datetime.now(UTC)).total_seconds() + 15,
            log=agent.log)  # fmt: skip
        assert paused["phase"] == "Pending"
        assert datetime.now(UTC) >= closes
        time.sleep(2)  # chunks asked for before the boundary may still be on the wire
        served = len(chunk_paths(nginx.access_log))
        assert 0 < served < len(manifest.files[0].chunks), "paused in the middle of the download"
        staged = list(model_dir.staging.glob("*/chunks/*"))
        assert staged, "what was downloaded stays in staging"
        while datetime.now(UTC) < opens - timedelta(seconds=2):
            assert model_dir.link("current") is None, "activated outside the window"
            assert status(kubectl, node).get("lastError", {}).get("reason") == "OutsideWindow"
            time.sleep(1)
        assert len(chunk_paths(nginx.access_log)) == served, "fetched while the window was closed"
        ready = wait_until("Ready once the window opened again", lambda: (
            (s := status(kubectl, node)).get("phase") == "Ready"
            and s.get("activeVersion") == "2.0" and s), timeout=120, log=agent.log)  # fmt: skip
        assert datetime.now(UTC) >= opens
        assert ready["bytesReused"] > 0
        paths = chunk_paths(nginx.access_log)
        assert len(paths) == len(set(paths)), "a staged chunk was downloaded again"
        assert model_dir.link("current") is not None
