"""The agent's files after activation: bit rot, rollback onto a rotted version, a full disk.

Real agent processes against the real apiserver and nginx. A byte flipped in the served file is
found (stat every heartbeat, sha256 at start) and repaired from the store; a rotted kept version
is never activated (the version is downloaded instead); a full disk (a tmpfs in a mount
namespace of the agent's own) is `DiskFull` with the numbers and recovers when space returns;
status names what `current` serves after a restart.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout_agent.layout import ModelDir, sha256_file
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.integration.test_agent import phase_is, publish
from tests.integration.test_agent_resilience import start_agent
from tests.support import Kubectl
from tests.unit.agent.models import golden_for, linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx
pytestmark = pytest.mark.usefixtures("crds_installed")


def flip_byte(path: Path, keep_mtime: bool) -> None:
    """Flip one byte in the middle of `path` (size unchanged; mtime kept when asked)."""
    before = path.stat()
    with open(path, "r+b") as out:
        out.seek(before.st_size // 2)
        byte = out.read(1)
        out.seek(before.st_size // 2)
        out.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def intact(data_dir: Path, version: str) -> bool:
    """`current` is `version` and its file matches the manifest's digest."""
    model_dir = ModelDir(data_dir, "ns/dep")
    current = model_dir.link("current")
    manifest = model_dir.manifest(current) if current else None
    if current is None or manifest is None or current.version != version:
        return False
    return sha256_file(model_dir.path(current) / "model.onnx") == manifest.main_file.digest


def served(data_dir: Path, version: str) -> Path:
    return ModelDir(data_dir, "ns/dep").base / f"{version}-fp32" / "model.onnx"


def repaired(kubectl: Kubectl, agent: AgentProcess, data: Path, version: str) -> Any:
    def probe() -> Any:
        return intact(data, version) and phase_is(kubectl, agent.node, "Ready", version)()

    return probe


def test_a_byte_flipped_in_the_served_file_is_repaired_also_across_a_restart(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    data = tmp_path / "data"
    agent = start_agent(control_plane, kubectl, tmp_path)
    try:
        set_models(kubectl, agent.node, [v1])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        flip_byte(served(data, "1.0"), keep_mtime=False)  # seen by the stat check
        wait_for("the flip repaired", repaired(kubectl, agent, data, "1.0"), 60, log=agent.log)
        assert "Corrupted" in agent.log.read_text()
        agent.kill(signal.SIGTERM)
        flip_byte(served(data, "1.0"), keep_mtime=True)  # only a sha256 sees it
        agent.start()
        wait_for("the Corrupted report", lambda: _reason(kubectl, agent.node) == "Corrupted"
                 or agent.log.read_text().count("Corrupted: ") >= 2, 60, log=agent.log)  # fmt: skip
        wait_for("repaired after restart", repaired(kubectl, agent, data, "1.0"), 60,
                 log=agent.log)  # fmt: skip
    finally:
        agent.kill(signal.SIGTERM)


def _reason(kubectl: Kubectl, node: str) -> str:
    error = (model_status(kubectl, node, "ns/dep") or {}).get("lastError") or {}
    return str(error.get("reason", ""))


def test_rollback_onto_a_rotted_kept_version_downloads_it_and_never_lies(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, tmp_path, "2.0", 256, 0.5) | {"storeUrl": nginx.url}
    data = tmp_path / "data"
    agent = start_agent(control_plane, kubectl, tmp_path)
    lies: list[dict[str, Any]] = []

    def rolled_back() -> Any:
        status = model_status(kubectl, agent.node, "ns/dep") or {}
        if status.get("phase") in ("Ready", "RolledBack") and status.get("version") == "1.0":
            if status.get("activeVersion") != "1.0" or not intact(data, "1.0"):
                lies.append(status)
            return intact(data, "1.0") and status.get("activeVersion") == "1.0"
        return False

    try:
        set_models(kubectl, agent.node, [v1])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        set_models(kubectl, agent.node, [v2])
        wait_for("v2 Ready", phase_is(kubectl, agent.node, "Ready", "2.0"), 120, log=agent.log)
        flip_byte(served(data, "1.0"), keep_mtime=True)  # rot the kept version, unseen by stat
        set_models(kubectl, agent.node, [v1])
        wait_for("the stable version downloaded and serving", rolled_back, 90, log=agent.log)
    finally:
        agent.kill(signal.SIGTERM)
    assert lies == [], f"status claimed 1.0 while it was not served intact: {lies}"
    assert "Corrupted" in agent.log.read_text()


@contextmanager
def every_status(kubectl: Kubectl, node: str, out: Path) -> Iterator[Path]:
    """`kubectl get -w -o json` of the EdgeNode into `out`: every status the agent wrote."""
    with open(out, "wb") as sink:
        plane = kubectl.plane
        args = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}", "get", "edgenode", node]
        proc = subprocess.Popen([*args, "-w", "-o", "json"], stdout=sink)
        try:
            yield out
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def models_seen(path: Path) -> list[dict[str, Any]]:
    """The `ns/dep` model status of each object in a `kubectl get -w -o json` stream."""
    text, decoder, found, at = path.read_text(), json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        body, at = decoder.raw_decode(text, at)
        found += [m for m in body.get("status", {}).get("models", []) if m["name"] == "ns/dep"]
    return found


def test_status_names_what_is_serving_after_a_restart(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    """Every status written after a restart with 2.0 failing (seen through a watch, none
    missed) names the 1.0 that `current` serves."""
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, tmp_path, "2.0", 256, 0.5)
    unreachable = f"http://127.0.0.1:{store_fixtures.free_port()}"
    agent = start_agent(control_plane, kubectl, tmp_path)
    try:
        set_models(kubectl, agent.node, [v1])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        set_models(kubectl, agent.node, [v2 | {"storeUrl": unreachable}])
        wait_for("the failed update", lambda: _failed_on(kubectl, agent.node, "2.0"), 90,
                 log=agent.log)  # fmt: skip
        agent.kill(signal.SIGTERM)  # it restarts with 2.0 in its cached spec
        with every_status(kubectl, agent.node, tmp_path / "watch.json") as stream:
            agent.start()
            wait_for("three reports after the restart", lambda: len(models_seen(stream)) >= 4,
                     90, log=agent.log)  # fmt: skip
    finally:
        agent.kill(signal.SIGTERM)
    after = [m for m in models_seen(stream) if m.get("version") == "2.0"][1:]  # [0]: before
    assert after, "no status about 2.0 was seen"
    wrong = [(m["phase"], m.get("activeVersion")) for m in after if m.get("activeVersion") != "1.0"]
    assert wrong == [], f"statuses after the restart that do not name the served 1.0: {wrong}"


def _failed_on(kubectl: Kubectl, node: str, version: str) -> dict[str, Any] | None:
    status = model_status(kubectl, node, "ns/dep") or {}
    ok = status.get("phase") == "Failed" and status.get("version") == version
    return status if ok else None


# --- a full disk --------------------------------------------------------------------------------


@contextmanager
def agent_on_tmpfs(
    control_plane: ControlPlane, tmp_path: Path, size: str
) -> Iterator[tuple[AgentProcess, subprocess.Popen[bytes], Path]]:
    """An agent whose data directory is a tmpfs of `size` in a mount namespace of its own (gone
    with the process); the test reaches it through /proc/<pid>/root."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a tmpfs in a private mount namespace")
    node = f"edge-{random.randrange(10**6)}"
    data = tmp_path / "data"
    data.mkdir()
    agent = AgentProcess(node, control_plane.kubeconfig, data, tmp_path / "agent.log")
    command = (f"mount -t tmpfs -o size={size} tmpfs {data} && exec {sys.executable} -m "
               f"edge_rollout_agent --node {node} --kubeconfig {control_plane.kubeconfig} "
               f"--data-dir {data} --metrics-port 0 --heartbeat 2")  # fmt: skip
    with open(agent.log, "ab") as out:
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", command],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        yield agent, proc, Path(f"/proc/{proc.pid}/root") / data.relative_to("/")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def fill(directory: Path, leave: int) -> Path:
    """A file that leaves `leave` bytes free on the file system of `directory`."""
    filler = directory / "filler"
    size = max(0, shutil.disk_usage(directory).free - leave)
    with open(filler, "wb") as out:
        out.truncate(0)
        for _ in range(size // (1 << 16)):
            out.write(b"\0" * (1 << 16))
    return filler


def test_a_full_disk_is_disk_full_with_numbers_and_recovers_when_space_returns(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, tmp_path, "2.0", 256, 0.5) | {"storeUrl": nginx.url}
    with agent_on_tmpfs(control_plane, tmp_path, "4m") as (agent, proc, data):
        wait_for("EdgeNode", lambda: edgenode(kubectl, agent.node), log=agent.log)
        set_models(kubectl, agent.node, [v1])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        filler = fill(data, leave=64 << 10)
        set_models(kubectl, agent.node, [v2])
        full = wait_for("DiskFull", lambda: _with_reason(kubectl, agent.node, "DiskFull"), 60,
                        log=agent.log)  # fmt: skip
        message = full["lastError"]["message"]
        assert "needed " in message
        assert " free " in message
        assert str(agent.data_dir) in message
        assert full["activeVersion"] == "1.0"
        filler.unlink()
        wait_for("v2 Ready once space returned", phase_is(kubectl, agent.node, "Ready", "2.0"),
                 90, log=agent.log)  # fmt: skip
        assert proc.poll() is None, "the agent was not restarted"
        assert intact(data, "2.0")
        assert not list((ModelDir(data, "ns/dep").base).glob(".tmp-*"))


def _with_reason(kubectl: Kubectl, node: str, reason: str) -> dict[str, Any] | None:
    status = model_status(kubectl, node, "ns/dep") or {}
    return status if (status.get("lastError") or {}).get("reason") == reason else None


def test_enospc_while_downloading_is_disk_full_and_resumes_when_space_returns(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    """The disk fills up after the fit check passed (another writer on the node): the write that
    fails is `DiskFull` naming the file, not `agent step failed`; freed, it resumes."""
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    weights, bias = random_weights(512, 512, seed=1)  # nothing in common with 1.0: all fetched
    data2 = linear_model(tmp_path / "2.0.onnx", weights, bias)
    m2 = store.publish(data2, "2.0", golden=golden_for(weights, bias))
    v2 = store.desired(m2, storeUrl=nginx.url, delivery={"maxBandwidth": "150k"})
    with agent_on_tmpfs(control_plane, tmp_path, "6m") as (agent, proc, data):
        wait_for("EdgeNode", lambda: edgenode(kubectl, agent.node), log=agent.log)
        set_models(kubectl, agent.node, [v1])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        set_models(kubectl, agent.node, [v2])
        wait_for("Downloading", lambda: (model_status(kubectl, agent.node, "ns/dep") or {})
                 .get("phase") == "Downloading", 60, log=agent.log)  # fmt: skip
        filler = fill(data, leave=0)
        full = wait_for("DiskFull", lambda: _with_reason(kubectl, agent.node, "DiskFull"), 60,
                        log=agent.log)  # fmt: skip
        assert "No space left on device" in full["lastError"]["message"]
        assert full["activeVersion"] == "1.0"
        assert "agent step failed" not in agent.log.read_text()
        filler.unlink()
        wait_for("v2 Ready once space returned", phase_is(kubectl, agent.node, "Ready", "2.0"),
                 120, log=agent.log)  # fmt: skip
        assert proc.poll() is None, "the agent was not restarted"
        assert intact(data, "2.0")
