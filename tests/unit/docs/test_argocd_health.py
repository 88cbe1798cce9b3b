"""The Argo CD health check we ship maps each status to the health users expect (Lua 5.1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support import REPO
from tests.unit.docs import gitops_snapshots

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


def assess(obj: dict[str, Any]) -> tuple[str, str]:
    """The health status and message the script gives `obj`."""
    program = (
        f"obj = {lua(obj)}\nlocal hs = (function()\n{SCRIPT.read_text()}\nend)()\n"
        'print(hs.status .. "\\n" .. hs.message)'
    )
    assert LUA is not None
    out = subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, check=True)
    status, _, message = out.stdout.rstrip("\n").partition("\n")
    return status, message


def health(obj: dict[str, Any]) -> str:
    return assess(obj)[0]


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


SNAPSHOTS = json.loads(gitops_snapshots.FIXTURE.read_text())


def test_the_snapshots_are_what_the_planner_writes_today() -> None:
    """The fixture holds real planner output: `python -m tests.unit.docs.gitops_snapshots`."""
    assert gitops_snapshots.FIXTURE.read_text() == gitops_snapshots.render()


@pytest.mark.skipif(LUA is None, reason="lua5.1 missing: run `make setup`")
@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_argocd_health_of_planner_snapshots(name: str) -> None:
    """Every phase the planner writes: Suspended at a pause, Degraded naming the failing nodes."""
    snapshot = SNAPSHOTS[name]
    status, message = assess(snapshot["object"])
    assert status == snapshot["health"], message
    for node in snapshot["object"]["status"].get("worstNodes", []):
        if status in ("Degraded", "Progressing"):
            assert f"{node['node']} ({node['reason']})" in message
