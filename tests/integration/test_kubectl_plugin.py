"""`kubectl edge-rollout` through kubectl's own plugin lookup, against the real apiserver.

A signed file:// store with releases 1.0 and 2.0, five scripted agents with different hardware
(selected by the deployment), one Node without an agent (not selected; its hardware comes from
labels), and the operator: the plugin's status, why, nodes and plan agree with what the operator
did, plan applies nothing, and the steering commands patch exactly the spec fields they name.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import pty
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from edge_rollout.api.edgenode import Hardware
from edge_rollout.cli import kubectl as kubectl_cli
from edge_rollout.kube import client as kube_client
from edge_rollout.store import keys
from edge_rollout.store.writer import DirectoryStore
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.reporter import ScriptedReporter, delete_nodes
from tests.support import REPO, Kubectl
from tests.unit.core.fixtures import GIB, MIB, hardware, release

VARIANTS = {"fp32", "fp16", "int8", "int8-npu"}
LABEL = "edgerollout.dev/plugin-test"
LABELS_ONLY = "kp-labels-gpu"


def fleet_hardware() -> dict[str, Hardware]:
    return {
        "kp-cpu": hardware("cpu"),
        "kp-gpu": hardware("gpu"),
        "kp-npu": hardware("npu"),
        "kp-small": hardware("cpu", memory=256 * MIB),
        "kp-big": hardware("cpu", memory=16 * GIB),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("plugin-store")
    key = keys.generate_private_key()
    for version in ("1.0", "2.0"):
        directory = DirectoryStore(root)
        directory.publish(fleet_support.with_stored_manifests(directory, release(version)), key)
    return root, keys.public_key_pem(key.public_key())


@pytest.fixture(scope="module")
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter(fleet_hardware(), labels={LABEL: "yes"}, delay=0.2, interval=0.2)
    reporter.start()
    client.CoreV1Api(kube_client.api_client()).create_node(labels_only_node())
    yield reporter
    reporter.stop()
    delete_nodes([*reporter.hardware, LABELS_ONLY])


def labels_only_node() -> client.V1Node:
    """A Node whose agent has not reported: an NVIDIA GPU by its labels, 8 GiB allocatable."""
    labels = {
        "kubernetes.io/arch": "arm64",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "Jetson-Orin",
    }
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=LABELS_ONLY, labels=labels),
        status=client.V1NodeStatus(allocatable={"memory": "8Gi"}, capacity={"memory": "8Gi"}),
    )


operator = fleet_support.operator


class Plugin:
    """`kubectl edge-rollout ...`, resolved by kubectl's plugin lookup on PATH."""

    def __init__(self, plane: ControlPlane) -> None:
        self.venv_bin = REPO / ".venv" / "bin"
        path = os.pathsep.join([str(self.venv_bin), str(plane.bin_dir), os.environ["PATH"]])
        self.env = {**os.environ, "PATH": path, "KUBECONFIG": str(plane.kubeconfig)}
        self.kubectl = str(plane.kubectl)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl, "edge-rollout", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl edge-rollout {' '.join(args)}: exit {result.returncode}\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


class Direct(Plugin):
    """The same commands in this process (each plugin process spends ~1 s importing): used for
    the many JSON checks, while `Plugin` proves the kubectl lookup and the real process."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                kubectl_cli.main(list(args))
            except SystemExit as exit_:
                code = int(exit_.code or 0)
        result = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"edge-rollout {' '.join(args)}:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def plugin(control_plane: ControlPlane) -> Plugin:
    return Plugin(control_plane)


@pytest.fixture(scope="module")
def direct(control_plane: ControlPlane) -> Plugin:
    return Direct(control_plane)


def document(
    namespace: str, store: tuple[Path, str], version: str, **strategy: Any
) -> dict[str, Any]:
    root, public_key = store
    return {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {
                "name": "m",
                "version": version,
                "store": {"url": f"file://{root}", "publicKey": public_key},
            },
            "nodeSelector": {"matchLabels": {LABEL: "yes"}},
            "strategy": {"maxUnavailable": 6, "minReadySeconds": 0, **strategy},
        },
    }


def md_json(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    )
    return out


def phase(kubectl: Kubectl, namespace: str, wanted: str, version: str) -> Callable[[], bool]:
    def check() -> bool:
        status = md_json(kubectl, namespace).get("status", {})
        return bool(status.get("phase") == wanted and status.get("stableVersion") == version)

    return check


def at_step(kubectl: Kubectl, namespace: str, index: int) -> Callable[[], bool]:
    def check() -> bool:
        status = md_json(kubectl, namespace).get("status", {})
        return bool(status.get("targetVersion") == "2.0" and status["currentStepIndex"] == index)

    return check


def test_plugin_views_and_controls(
    operator: KopfRunner,
    kubectl: Kubectl,
    plugin: Plugin,
    direct: Plugin,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    tmp_path: Path,
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(document(namespace, store, "1.0")))
    wait_for(phase(kubectl, namespace, "Ready", "1.0"), "1.0 Ready")

    check_status(plugin, direct, namespace)
    check_why_matches_operator(plugin, direct, kubectl, namespace)
    check_nodes(plugin, direct)
    check_plan_applies_nothing(plugin, direct, kubectl, namespace, store, tmp_path)
    check_promote_pause_resume_abort(plugin, direct, kubectl, namespace, store)
    # the fleet is shared with the next test: kp-small has room for one deployment's model
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=true", "--timeout=60s")


def check_status(plugin: Plugin, direct: Plugin, namespace: str) -> None:
    table = plugin("status", "m", "-n", namespace).stdout
    for text in ("phase Ready", "target 1.0", "stable 1.0", "TARGETED", "Variants", "Conditions"):
        assert text in table, table
    data = direct.json("status", "m", "-n", namespace)
    assert data["phase"] == "Ready"
    assert data["counts"]["targeted"] == data["counts"]["succeeded"] == 5
    assert set(data["variants"]) <= VARIANTS
    assert data["bytes"]["savedPercent"] == 90.0
    as_yaml = yaml.safe_load(direct("status", "m", "-n", namespace, "-o", "yaml").stdout)
    assert as_yaml == data


def check_why_matches_operator(
    plugin: Plugin, direct: Plugin, kubectl: Kubectl, namespace: str
) -> None:
    asked = entries(kubectl, namespace)
    for node in fleet_hardware():
        [explained] = direct.json("why", node, "-n", namespace)
        candidates = {c["variant"]: c for c in explained["candidates"]}
        assert set(candidates) == VARIANTS, explained
        assert all(c["reason"] and c["message"] for c in candidates.values()), explained
        assert [c["variant"] for c in candidates.values() if c["chosen"]] == [explained["variant"]]
        assert explained["variant"] == asked[node]["variant"], (node, explained)
    expected = {"kp-npu": "int8-npu", "kp-gpu": "fp16", "kp-small": "int8", "kp-big": "fp32"}
    for node, variant in expected.items():
        assert asked[node]["variant"] == variant
    [small] = direct.json("why", "kp-small", "m", "-n", namespace)
    reasons = {c["variant"]: c["reason"] for c in small["candidates"]}
    assert reasons == {
        "fp32": "DoesNotFit",
        "fp16": "NoExecutionProvider",
        "int8": "BestScore",
        "int8-npu": "NoExecutionProvider",
    }
    assert direct.json("why", LABELS_ONLY) == []  # no -n: every namespace; none selects it
    [labelled] = direct.json("why", LABELS_ONLY, "m", "-n", namespace)
    assert labelled["selected"] is False
    assert labelled["hardwareSource"] == "node labels"
    # no agent has reported its hardware: why waits as the planner does (no variant from labels)
    assert (labelled["variant"], labelled["reason"]) == (None, "AwaitingHardwareReport")
    assert labelled["candidates"] == []
    table = plugin("why", "kp-small", "-n", namespace).stdout
    for text in ("kp-small", "DoesNotFit", "NoExecutionProvider", "chosen", "memory left"):
        assert text in table, table


def check_nodes(plugin: Plugin, direct: Plugin) -> None:
    # Wide enough that no cell wraps, whatever EdgeNodes other tests left in the session's cluster
    wide = {**plugin.env, "COLUMNS": "240"}
    argv = [plugin.kubectl, "edge-rollout", "nodes"]
    table = subprocess.run(argv, env=wide, capture_output=True, text=True, timeout=60).stdout
    for text in ("kp-npu", "hailo", "kp-big", "16.0 GiB", "amd64", "Ready 1.0/"):
        assert text in table, table
    data = {n["name"]: n for n in direct.json("nodes")}
    assert data["kp-gpu"]["hardware"]["accelerators"][0]["vendor"] == "nvidia"
    assert data["kp-npu"]["models"][0]["phase"] == "Ready"


def check_plan_applies_nothing(
    plugin: Plugin,
    direct: Plugin,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    tmp_path: Path,
) -> None:
    before = (
        md_json(kubectl, namespace)["metadata"]["resourceVersion"],
        entries(kubectl, namespace),
    )
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(document(namespace, store, "2.0", steps=[{"setNodeCount": 2}])))
    data = plugin.json("plan", "-f", str(path))
    assert data["applied"] is False
    assert data["version"] == "2.0"
    assert {p["node"] for p in data["nodes"]} == set(fleet_hardware())
    assert all({c["variant"] for c in p["candidates"]} == VARIANTS for p in data["nodes"])
    assert sum(p["askedNow"].startswith("2.0/") for p in data["nodes"]) == 2
    table = direct("plan", "-f", str(path)).stdout
    assert "nothing was applied" in table, table
    console = subprocess.run(
        [plugin.venv_bin / "edge-rollout", "plan", "-f", str(path), "-o", "json"],
        env=plugin.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(console.stdout)["nodes"] == data["nodes"]
    after = (
        md_json(kubectl, namespace)["metadata"]["resourceVersion"],
        entries(kubectl, namespace),
    )
    assert after == before
    bad = document(namespace, store, "2.0", maxUnavailable="120%")
    path.write_text(yaml.safe_dump(bad))
    refused = direct("plan", "-f", str(path), check=False)
    assert refused.returncode == 1
    assert "percentage from 0% to 100%" in refused.stderr


def check_promote_pause_resume_abort(
    plugin: Plugin, direct: Plugin, kubectl: Kubectl, namespace: str, store: tuple[Path, str]
) -> None:
    steps = [{"setNodeCount": 1}, {"pause": {}}, {"setNodeCount": 2}, {"pause": {}}]
    kubectl("apply", "-f", "-", input=json.dumps(document(namespace, store, "2.0", steps=steps)))
    wait_for(at_step(kubectl, namespace, 1), "the first pause")
    table = plugin("status", "m", "-n", namespace).stdout
    assert "step 1/4: pause until approved" in table, table
    assert f"kubectl edge-rollout promote m -n {namespace}" in table, table
    promoted = plugin("promote", "m", "-n", namespace).stdout
    assert "promoted" in promoted
    approved = md_json(kubectl, namespace)["spec"]["strategy"]["approved"]
    assert approved == {"version": "2.0", "throughStep": 1}
    wait_for(at_step(kubectl, namespace, 3), "the second pause")

    direct("pause", "m", "-n", namespace)
    assert md_json(kubectl, namespace)["spec"]["paused"] is True
    direct("resume", "m", "-n", namespace)
    assert md_json(kubectl, namespace)["spec"]["paused"] is False

    aborted = plugin("abort", "m", "-n", namespace).stdout
    spec = md_json(kubectl, namespace)["spec"]
    assert spec["paused"] is True
    assert spec["model"]["version"] == "2.0"
    assert "spec.model.version: '1.0'" in aborted, aborted
    assert "m paused, NOT rolled back" in aborted, aborted
    time.sleep(2)  # paused: nothing moves
    assert sum(e["version"] == "2.0" for e in entries(kubectl, namespace).values()) == 2
    direct("abort", "m", "-n", namespace, "--rollback")
    spec = md_json(kubectl, namespace)["spec"]
    assert (spec["model"]["version"], spec["paused"]) == ("1.0", False)
    assert spec["strategy"]["approved"] == {"version": "1.0", "throughStep": 64}
    wait_for(
        lambda: {e["version"] for e in entries(kubectl, namespace).values()} == {"1.0"},
        "every node back on 1.0",
    )
    wait_for(phase(kubectl, namespace, "Ready", "1.0"), "1.0 Ready again")


entries = fleet_support.entries
wait_for = fleet_support.wait_for


GHOST_LABEL = "edgerollout.dev/plugin-ghost"
VIEWERS = "edge-rollout-plugin-viewers"


def test_plugin_follows_kubectl_conventions(
    operator: KopfRunner,
    kubectl: Kubectl,
    plugin: Plugin,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(document(namespace, store, "1.0")))
    settled = plugin("status", "m", "-n", namespace, "--timeout", "90s")
    assert "Ready: 5/5 nodes on 1.0" in settled.stdout, settled.stdout

    check_kubeconfig_list_and_context(plugin, control_plane, namespace, tmp_path)
    check_impersonation(plugin, kubectl, namespace)
    check_list_and_version(plugin, namespace)
    check_watch_on_a_terminal(plugin, kubectl, namespace)
    check_watch_and_timeout(plugin, kubectl, namespace, store)
    check_degraded_exit_code(plugin, kubectl, namespace, store)


def check_kubeconfig_list_and_context(
    plugin: Plugin, plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """KUBECONFIG=a:b as kubectl merges it: the context (and its namespace) from the second file;
    --context picks a context of the second file when the first names another current one."""
    real = yaml.safe_load(plane.kubeconfig.read_text())
    real["contexts"] = [{"name": "edge-test", "context": {
        **real["contexts"][0]["context"], "namespace": namespace}}]  # fmt: skip
    real["current-context"] = "edge-test"
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump(real))
    nowhere = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "nobody", "user": {"token": "none"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody"}}],
    }  # fmt: skip
    first = tmp_path / "a.yaml"
    first.write_text(yaml.safe_dump(nowhere))
    listed = run_with(plugin, {"KUBECONFIG": f"{first}:{second}"}, "list")
    assert listed.returncode == 0, listed.stderr
    assert namespace in listed.stdout
    assert "Ready" in listed.stdout, listed.stdout
    first.write_text(yaml.safe_dump({**nowhere, "current-context": "nowhere"}))
    unreachable = run_with(plugin, {"KUBECONFIG": f"{first}:{second}"}, "list")
    assert unreachable.returncode == 1
    assert "cannot reach the cluster" in unreachable.stderr, unreachable.stderr
    agrees = run_kubectl(plugin, {"KUBECONFIG": f"{first}:{second}"}, "get", "mdep", "-A")
    assert agrees.returncode != 0, "kubectl takes the first current-context too"
    chosen = run_with(plugin, {"KUBECONFIG": f"{first}:{second}"}, "list", "--context", "edge-test")
    assert chosen.returncode == 0, chosen.stderr
    assert namespace in chosen.stdout


def run_with(plugin: Plugin, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubectl(plugin, env, "edge-rollout", *args)


def run_kubectl(
    plugin: Plugin, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [plugin.kubectl, "--request-timeout=5s", *args]
        if args[0] != "edge-rollout"
        else [plugin.kubectl, *args],
        env={**plugin.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_impersonation(plugin: Plugin, kubectl: Kubectl, namespace: str) -> None:
    """--as a user without RBAC: a clear forbidden; with --as-group of a group bound to a
    read role (repeated groups each sent as their own header): the status."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": VIEWERS},
        "rules": [{"apiGroups": ["edgerollout.dev"], "resources": ["modeldeployments"],
                   "verbs": ["get", "list", "watch"]}],
    }  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": VIEWERS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": VIEWERS},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": VIEWERS}],
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": [role, binding]}))  # fmt: skip
    denied = plugin("status", "m", "-n", namespace, "--as", "alice", check=False)
    assert denied.returncode == 1
    assert "forbidden" in denied.stderr, denied.stderr
    assert 'User "alice"' in denied.stderr, denied.stderr
    allowed = plugin("status", "m", "-n", namespace, "-o", "json", "--as", "alice",
                     "--as-group", "others", "--as-group", VIEWERS)  # fmt: skip
    assert json.loads(allowed.stdout)["phase"] == "Ready"


def check_list_and_version(plugin: Plugin, namespace: str) -> None:
    table = plugin("list", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAMESPACE", "NAME", "PHASE", "VERSION", "STABLE", "STEP", "NODES",
                              "FAILED"]  # fmt: skip
    assert row.split() == [namespace, "m", "Ready", "1.0", "1.0", "-", "5/5", "0"], row
    everywhere = plugin.json("list", "-A")
    assert {(d["namespace"], d["name"]) for d in everywhere} >= {(namespace, "m")}
    versions = plugin.json("version")
    assert versions["pluginVersion"] == "0.1.0"
    assert versions["serverVersion"].startswith("v1.33.")


def check_watch_on_a_terminal(plugin: Plugin, kubectl: Kubectl, namespace: str) -> None:
    """-w on a terminal redraws the view in place (cursor up, erase) when the deployment changes."""
    controller, terminal = pty.openpty()
    watcher = subprocess.Popen(
        [plugin.kubectl, "edge-rollout", "status", "m", "-n", namespace, "-w", "--interval", "0.3"],
        env={**plugin.env, "TERM": "xterm", "COLUMNS": "160", "LINES": "60"},
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    screen = bytearray()
    try:
        wait_for(lambda: b"ModelDeployment" in read_pty(controller, screen), "the first frame")
        assert b"Every 0.3s" in screen, bytes(screen)
        assert b"Ready" in screen, bytes(screen)
        kubectl("patch", "mdep", "m", "-n", namespace, "--type", "merge",
                "-p", '{"spec":{"paused":true}}')  # fmt: skip
        wait_for(lambda: b"(spec.paused)" in read_pty(controller, screen), "the redraw")
        assert b"\x1b[1A" in screen or b"\x1b[2K" in screen, bytes(screen[-400:])
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        os.close(controller)
        kubectl("patch", "mdep", "m", "-n", namespace, "--type", "merge",
                "-p", '{"spec":{"paused":false}}')  # fmt: skip


def read_pty(fd: int, screen: bytearray) -> bytes:
    """What the terminal received so far (non-blocking)."""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen.extend(chunk)
    return bytes(screen)


def check_watch_and_timeout(
    plugin: Plugin, kubectl: Kubectl, namespace: str, store: tuple[Path, str]
) -> None:
    """-w in a pipe prints a block when something changed and nothing while nothing does;
    --timeout exits 5 at a pause and 0 once promoted to Ready."""
    watcher = subprocess.Popen(
        [plugin.kubectl, "edge-rollout", "status", "m", "-n", namespace, "-w", "--interval", "0.3"],
        env=plugin.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=collect, args=(watcher, lines))
    reader.start()
    try:
        wait_for(lambda: blocks_in(lines) == 1, "the first block")
        time.sleep(3)  # ten reads, nothing changed
        assert blocks_in(lines) == 1, "".join(lines)
        steps = [{"setNodeCount": 1}, {"pause": {}}]
        kubectl(
            "apply", "-f", "-", input=json.dumps(document(namespace, store, "2.0", steps=steps))
        )
        wait_for(at_step(kubectl, namespace, 1), "the pause")
        paused = plugin("status", "m", "-n", namespace, "--timeout", "2s", check=False)
        assert paused.returncode == 5, paused.stdout + paused.stderr
        assert "timed out after 2s, still Paused  step 1/2: pause until approved" in paused.stdout
        plugin("promote", "m", "-n", namespace)
        done = plugin("status", "m", "-n", namespace, "--timeout", "90s")
        assert "Ready: 5/5 nodes on 2.0" in done.stdout, done.stdout
        time.sleep(1)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        reader.join(timeout=10)
    text = "".join(lines)
    blocks = text.split("--- ")[1:]
    assert len(blocks) >= 3, text
    assert "target 1.0" in blocks[0]
    assert "stable 2.0" in blocks[-1]
    bodies = [block.split("\n", 1)[1] for block in blocks]
    assert all(a != b for a, b in itertools.pairwise(bodies)), "a block per change"


def collect(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


def blocks_in(lines: list[str]) -> int:
    return sum(line.startswith("--- ") for line in list(lines))


def check_degraded_exit_code(
    plugin: Plugin, kubectl: Kubectl, namespace: str, store: tuple[Path, str]
) -> None:
    """A deployment whose only node is too small for every variant is Degraded: --timeout
    exits 3."""
    tiny = f"kp-tiny-{namespace}"
    reporter = ScriptedReporter(
        {tiny: hardware("cpu", memory=MIB)}, labels={GHOST_LABEL: namespace}
    )
    reporter.start()
    body = document(namespace, store, "1.0")
    body["metadata"]["name"] = "tiny"
    body["spec"]["nodeSelector"] = {"matchLabels": {GHOST_LABEL: namespace}}
    try:
        kubectl("apply", "-f", "-", input=json.dumps(body))
        failed = plugin("status", "tiny", "-n", namespace, "--timeout", "50s", check=False)
        assert failed.returncode == 3, failed.stdout + failed.stderr
        assert "tiny: Degraded" in failed.stdout, failed.stdout
    finally:
        kubectl("delete", "mdep", "tiny", "-n", namespace, "--wait=true", "--timeout=60s")
        reporter.stop()
        delete_nodes([tiny])
