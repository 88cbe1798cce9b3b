"""The plugin's kubectl conventions without a cluster: the verdict and exit code of
`status --timeout`, the `list` table, the current context of a KUBECONFIG list, --as headers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.cli import kubectl, listview, watching
from edge_rollout.cli.formatting import render_text
from edge_rollout.kube import client as kube_client
from tests.unit.cli.samples import deployment


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param({"phase": "Ready", "observedGeneration": 3}, 0, id="ready"),
        pytest.param({"phase": "Degraded", "observedGeneration": 3}, 3, id="degraded"),
        pytest.param({"phase": "Failed", "observedGeneration": 3}, 3, id="failed"),
        pytest.param({"phase": "RolledBack", "observedGeneration": 3}, 4, id="rolled-back"),
        pytest.param({"phase": "Progressing", "observedGeneration": 3}, None, id="progressing"),
        pytest.param({"phase": "Paused", "observedGeneration": 3}, None, id="paused"),
        pytest.param({"phase": "Ready", "observedGeneration": 2}, None, id="ready-but-stale"),
        pytest.param(
            {"phase": "Ready", "observedGeneration": 3, "targetVersion": "1.0"},
            None,
            id="ready-on-an-older-version",
        ),
    ],
)
def test_the_verdict_waits_for_the_current_spec(status: dict[str, Any], code: int | None) -> None:
    found = watching.verdict(deployment(**status))
    assert (found.code if found else None) == code


def test_the_verdict_says_what_happened() -> None:
    ready = watching.verdict(deployment(phase="Ready", observedGeneration=3))
    assert ready == watching.Verdict(0, "Ready: 1/6 nodes on 2.0")
    degraded = watching.verdict(deployment(phase="Degraded", observedGeneration=3))
    assert degraded is not None
    assert degraded.text.startswith("Degraded: 1/6 nodes on 2.0, 1 failed")


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = kubectl.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found


def test_exit_codes_are_in_the_help() -> None:
    text = _subcommand("status").format_help()
    for code in ("0 Ready", "3 Degraded or Failed", "4 RolledBack", "5 timeout"):
        assert code in " ".join(text.split()), text


def test_abort_help_says_it_pauses_and_points_to_rollback() -> None:
    text = " ".join(_subcommand("abort").format_help().split())
    assert "PAUSE the rollout" in text
    assert "use abort --rollback" in text
    assert "return to stable" in text


def test_list_table_and_data() -> None:
    mds = [deployment(name="b"), deployment(name="a", phase="Ready", currentStepIndex=3)]
    text = render_text(listview.list_view(mds))
    rows = [line.split() for line in text.splitlines()]
    assert rows == [
        ["NAMESPACE", "NAME", "PHASE", "VERSION", "STABLE", "STEP", "NODES", "FAILED"],
        ["ns", "a", "Ready", "2.0", "1.0", "3/3", "1/6", "1"],
        ["ns", "b", "Progressing", "2.0", "1.0", "1/3", "1/6", "1"],
    ]
    assert [d["name"] for d in listview.list_data(mds)] == ["a", "b"]
    assert render_text(listview.list_view([])).strip() == "No ModelDeployments found."


def _config(path: Path, current: str | None) -> Path:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "contexts": []}
    if current:
        body["current-context"] = current
    path.write_text(yaml.safe_dump(body))
    return path


def test_the_first_file_that_names_a_current_context_wins(tmp_path: Path) -> None:
    """kubectl's rule; the client library alone would take the last file's."""
    a = _config(tmp_path / "a", None)
    b = _config(tmp_path / "b", "second")
    c = _config(tmp_path / "c", "third")
    missing = tmp_path / "missing"
    paths = ":".join(str(p) for p in (missing, a, b, c))
    assert kube_client.current_context(paths) == "second"
    assert kube_client.current_context(str(a)) is None


class _Recorder:
    def __init__(self) -> None:
        self.headers: Any = None
        self.connection_pool_kw = {"x": 1}

    def request(self, method: str, url: str, **kwargs: Any) -> str:
        self.headers = kwargs["headers"]
        return "response"


def test_impersonation_sends_one_header_per_group() -> None:
    inner = _Recorder()
    pool = kube_client._Impersonating(inner, "alice", ["viewers", "ops"])
    assert pool.request("GET", "https://x/api", headers={"Accept": "application/json"}) == (
        "response"
    )
    assert inner.headers["Impersonate-User"] == "alice"
    assert inner.headers.getlist("Impersonate-Group") == ["viewers", "ops"]
    assert inner.headers["Accept"] == "application/json"
    assert pool.connection_pool_kw == {"x": 1}


PHASES = ["", "Pending", "Progressing", "Paused", "Ready", "Degraded", "RolledBack", "Failed"]


@given(
    phase=st.sampled_from(PHASES),
    observed=st.integers(min_value=0, max_value=6),
    target=st.sampled_from(["", "1.0", "2.0"]),
)
def test_only_a_settled_current_rollout_ends_the_wait(
    phase: str, observed: int, target: str
) -> None:
    """Exit 0 only for Ready on the spec now in the cluster (generation 3, version 2.0); a stale
    status or another version's never ends the wait; Pending/Progressing/Paused never do."""
    found = watching.verdict(
        deployment(phase=phase, observedGeneration=observed, targetVersion=target)
    )
    current = observed >= 3 and target in ("", "2.0")
    if not current or phase in ("", "Pending", "Progressing", "Paused"):
        assert found is None
    else:
        assert found is not None
        expected = {"Ready": 0, "Degraded": 3, "Failed": 3, "RolledBack": 4}[phase]
        assert found.code == expected
