"""Helpers for the agent's integration tests: run `edge-rollout-agent` as a process, read status.

Every process started here is stopped by whoever started it (the `AgentProcess` context manager).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.store_fixtures import free_port
from tests.support import Kubectl


@dataclass
class AgentProcess:
    """`python -m edge_rollout_agent` for one node, logging to `log`."""

    node: str
    kubeconfig: Path
    data_dir: Path
    log: Path
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        args = [sys.executable, "-m", "edge_rollout_agent", "--node", self.node,
                "--kubeconfig", str(self.kubeconfig), "--data-dir", str(self.data_dir),
                "--metrics-port", str(self.port), "--heartbeat", "2", *self.extra]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill(signal.SIGTERM)


def edgenode(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    result = kubectl("get", "edgenode", name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def set_models(kubectl: Kubectl, name: str, models: list[dict[str, Any]]) -> None:
    """Write EdgeNode.spec.models, as the operator would."""
    patch = json.dumps({"spec": {"models": models}})
    kubectl("patch", "edgenode", name, "--type", "merge", "-p", patch)


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float = 90.0, log: Path | None = None
) -> Any:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def model_status(kubectl: Kubectl, node: str, name: str) -> dict[str, Any] | None:
    body = edgenode(kubectl, node) or {}
    models = body.get("status", {}).get("models", [])
    return next((m for m in models if m["name"] == name), None)
