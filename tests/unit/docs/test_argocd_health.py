"""The Argo CD health check we ship maps each status to the health users expect (Lua 5.1)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.support import REPO

SCRIPT = REPO / "docs" / "gitops" / "argocd-health.lua"
LUA = shutil.which("lua5.1")


def lua(value: Any) -> str:
    """A Python value as a Lua table literal."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def health(obj: dict[str, Any]) -> str:
    program = (
        f"obj = {lua(obj)}\nlocal hs = (function()\n{SCRIPT.read_text()}\nend)()\nprint(hs.status)"
    )
    assert LUA is not None
    out = subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def md(generation: int, phase: str, **conditions: str) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": generation,
            "phase": phase,
            "message": "m",
            "conditions": [{"type": t, "status": s, "reason": "R"} for t, s in conditions.items()],
        },
    }


@pytest.mark.skipif(LUA is None, reason="lua5.1 missing: run `make setup`")
@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param({"metadata": {"generation": 1}}, "Progressing", id="no-status"),
        pytest.param(md(1, "Ready", Ready="True"), "Progressing", id="old-generation"),
        pytest.param(
            md(2, "Progressing", Ready="False", Reconciling="True"), "Progressing", id="rolling"
        ),
        pytest.param(md(2, "Ready", Ready="True", Stalled="False"), "Healthy", id="ready"),
        pytest.param(md(2, "Paused", Ready="False", Stalled="False"), "Suspended", id="paused"),
        pytest.param(
            md(2, "RolledBack", Ready="False", Stalled="True"), "Degraded", id="rolled-back"
        ),
    ],
)
def test_argocd_health(obj: dict[str, Any], expected: str) -> None:
    assert health(obj) == expected
