"""The kubectl plugin's pure parts: explanations, dry runs, views, spec patches and parsing."""

from __future__ import annotations

import doctest
import json
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from rich.console import RenderableType

from edge_rollout.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from edge_rollout.cli import explaining, kubectl, options, statusview, steering, whyview
from edge_rollout.cli import formatting as fmt
from edge_rollout.core import inputs, planning, reports
from tests.unit.cli.samples import deployment, edgenode, entry, fleet
from tests.unit.core.fixtures import GIB, MIB, T0, release
from tests.unit.core.fixtures import fleet as core_fleet

VARIANTS = {"fp32", "fp16", "int8", "int8-npu"}
RELEASES = {"1.0": release("1.0"), "2.0": release("2.0")}


def text(renderable: RenderableType) -> str:
    return fmt.render_text(renderable)


def small_fleet() -> explaining.Fleet:
    return fleet(
        edgenode("edge-cpu", "cpu"),
        edgenode("edge-gpu", "gpu", desired=[entry("1.0", "fp16")]),
        edgenode("edge-npu", "npu", temperature_celsius=61.5),
        edgenode("edge-small", "cpu", memory=256 * MIB),
        labels_only={"jetson": {"edge": "true", "nvidia.com/gpu.present": "true"}},
    )


# status -------------------------------------------------------------------------------------


def test_status_view_shows_step_counts_variants_bytes_conditions_and_worst_nodes() -> None:
    out = text(statusview.status_view(deployment()))
    for expected in (
        "ns/md",
        "phase Progressing",
        "target 2.0",
        "stable 1.0",
        "step 1/3: pause until approved",
        "TARGETED",
        "int8-npu",
        "fetched 3.0 MiB, reused 9.0 MiB (75% saved",
        "RolloutInProgress",
        "edge-3",
        "TestVectorMismatch",
        "output 0 differs",
        "kubectl edge-rollout promote md -n ns",
    ):
        assert expected in out, out


def test_status_view_shows_the_abort_reason_and_the_paused_spec() -> None:
    md = deployment(phase="RolledBack", abortReason="3 of 4 finished nodes failed")
    md = md.model_copy(update={"spec": md.spec.model_copy(update={"paused": True})})
    out = text(statusview.status_view(md))
    assert "Aborted: 3 of 4 finished nodes failed" in out
    assert "(spec.paused)" in out
    assert "kubectl edge-rollout resume md -n ns" in out


@pytest.mark.parametrize(
    ("step", "steps", "expected"),
    [
        pytest.param(0, None, "step 0/3: setNodeCount 1", id="first-step"),
        pytest.param(1, None, "step 1/3: pause until approved", id="pause"),
        pytest.param(3, None, "all 3 steps done", id="done"),
        pytest.param(0, [], "no steps (all nodes at once, within maxUnavailable)", id="no-steps"),
    ],
)
def test_step_text(step: int, steps: list[object] | None, expected: str) -> None:
    md = deployment(step=step)
    if steps is not None:
        strategy = md.spec.strategy.model_copy(update={"steps": steps})
        md = md.model_copy(update={"spec": md.spec.model_copy(update={"strategy": strategy})})
    assert statusview.step_text(md) == expected


def test_status_data_is_plain_json_and_yaml() -> None:
    data = statusview.status_data(deployment())
    assert data["step"] == {"index": 1, "count": 3, "description": "pause until approved"}
    assert data["variants"] == {"fp16": 1, "int8-npu": 1}
    assert data["bytes"]["savedPercent"] == 75.0
    assert data["worstNodes"][0]["reason"] == "TestVectorMismatch"
    assert json.loads(fmt.encode(data, "json")) == data
    assert yaml.safe_load(fmt.encode(data, "yaml")) == data


def test_a_deployment_never_planned_says_so() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "md", "namespace": "ns"},
            "spec": {"model": {"name": "m", "version": "1.0", "store": {"url": "http://s/s"}}},
        }
    )
    out = text(statusview.status_view(md))
    assert "not planned yet" in out
    assert "fetched 0 B, reused 0 B" in out


def test_a_stalled_deployment_says_why() -> None:
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "ReleaseUnverifiable",
        "message": "the signature does not verify",
        "lastTransitionTime": "2026-11-01T00:00:00Z",
    }
    md = deployment(phase="", conditions=[stalled])
    out = text(statusview.status_view(md))
    assert "phase Stalled (ReleaseUnverifiable)" in out
    assert "the signature does not verify" in out


# why ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "variant", "reasons"),
    [
        pytest.param(
            "edge-npu",
            "int8-npu",
            {"fp16": "NoExecutionProvider", "fp32": "Outranked", "int8": "Outranked"},
            id="npu",
        ),
        pytest.param(
            "edge-small",
            "int8",
            {
                "fp16": "NoExecutionProvider",
                "fp32": "DoesNotFit",
                "int8-npu": "NoExecutionProvider",
            },
            id="small-memory",
        ),
    ],
)
def test_why_gives_the_choice_and_a_reason_for_every_candidate(
    node: str, variant: str, reasons: dict[str, str]
) -> None:
    explained = explaining.explain_node(deployment(), RELEASES["2.0"], small_fleet(), node)
    assert explained is not None
    assert explained.variant == variant
    assert {c.variant for c in explained.candidates} == VARIANTS
    assert {c.variant: c.reason for c in explained.candidates if not c.chosen} == reasons
    assert all(c.message for c in explained.candidates)
    assert [c.variant for c in explained.candidates if c.chosen] == [variant]


def test_why_says_a_node_without_a_hardware_report_waits_as_the_planner_does() -> None:
    explained = explaining.explain_node(deployment(), RELEASES["2.0"], small_fleet(), "jetson")
    assert explained is not None
    assert (explained.variant, explained.reason) == (None, "AwaitingHardwareReport")
    assert explained.candidates == ()
    assert "waiting for its agent's hardware report" in explained.message


def test_why_counts_memory_claimed_by_higher_priority_deployments() -> None:
    other = entry("1.0", "big", name="ns/critical", priority=100, memoryBytes=3300 * MIB)
    nodes = fleet(edgenode("edge-cpu", "cpu", desired=[other]))
    explained = explaining.explain_node(deployment(), RELEASES["2.0"], nodes, "edge-cpu")
    assert explained is not None
    assert explained.claims == (other,)
    assert explained.budget == int(3.6 * GIB) - 3300 * MIB
    assert explained.variant == "int8"
    assert {c.variant: c.reason for c in explained.candidates}["fp32"] == "DoesNotFit"


def test_why_falls_back_past_variants_that_failed_on_the_node() -> None:
    failed = entry("2.0", "fp32", excludedVariants=["fp32"])
    nodes = fleet(edgenode("edge-cpu", "cpu", desired=[failed]))
    explained = explaining.explain_node(deployment(), RELEASES["2.0"], nodes, "edge-cpu")
    assert explained is not None
    assert explained.excluded == ("fp32",)
    assert explained.variant == "int8"
    assert {c.variant: c.reason for c in explained.candidates}["fp32"] == "FailedOnNode"


def test_why_agrees_with_the_planner_on_every_node() -> None:
    nodes = small_fleet()
    md = deployment()
    plan = planning.plan_rollout(
        planning.Deployment("ns/md", 3, md.spec, md.status),
        RELEASES,
        explaining.node_inputs(md, nodes),
        T0,
    )
    for name, choice in plan.choices.items():
        explained = explaining.explain_node(md, RELEASES["2.0"], nodes, name)
        assert explained is not None
        assert (explained.variant, explained.reason) == (choice.variant, choice.reason)


def test_why_view_shows_the_node_the_candidates_and_what_the_node_reports() -> None:
    reported = {
        "name": "ns/md",
        "phase": "Failed",
        "version": "2.0",
        "variant": "fp16",
        "activeVersion": "1.0",
        "activeVariant": "fp16",
        "lastError": {"reason": "LoadFailed", "message": "CUDA out of memory"},
    }
    nodes = fleet(edgenode("edge-gpu", "gpu", desired=[entry("2.0", "fp16")], models=[reported]))
    explained = explaining.explain_node(deployment(), RELEASES["2.0"], nodes, "edge-gpu")
    assert explained is not None
    out = text(
        whyview.why_view("edge-gpu", explaining.node_hardware("edge-gpu", nodes), [explained])
    )
    for expected in (
        "Node edge-gpu  (hardware from agent report)",
        "gpu nvidia t4",
        "release 2.0  ->  fp16 (BestScore)",
        "memory left for this model: 3.6 GiB",
        "NoExecutionProvider",
        "Outranked",
        "chosen",
        "operator asked: 2.0/fp16; node reports Failed on 2.0/fp16, serving 1.0/fp16",
        "last error: LoadFailed: CUDA out of memory",
    ):
        assert expected in out, out
    data = whyview.why_data([explained])
    assert data[0]["reported"]["lastError"]["reason"] == "LoadFailed"
    assert {c["variant"] for c in data[0]["candidates"]} == VARIANTS


def test_why_says_a_node_whose_agent_went_silent_is_held_as_the_planner_does() -> None:
    nodes = small_fleet()  # every agent's last heartbeat at T0, every 30 s
    for now, expected in ((T0 + timedelta(seconds=110), ("int8-npu", "BestScore")),
                          (T0 + timedelta(seconds=130), (None, "AgentNotReporting"))):  # fmt: skip
        explained = explaining.explain_node(deployment(), RELEASES["2.0"], nodes, "edge-npu", now)
        assert explained is not None
        assert (explained.variant, explained.reason) == expected, explained.message
    assert explained is not None
    assert explained.message.startswith("node edge-npu: its agent has sent no heartbeat since ")
    assert explained.candidates == ()


def test_a_dry_run_holds_a_node_whose_agent_went_silent() -> None:
    slow = explaining.Fleet(small_fleet().nodes, small_fleet().edgenodes, timedelta(minutes=2))
    for nodes, asked in ((slow, ["edge-cpu"]), (small_fleet(), [])):
        run = explaining.dry_run(deployment(), RELEASES, nodes, T0 + timedelta(minutes=5))
        got = [p.node for p in run.nodes if p.planned is not None and p.planned.version == "2.0"]
        assert got == asked  # silent for 5 minutes: more than 4 heartbeats of 30 s, not of 2 min
    held = {p.node: p.choice.reason for p in run.nodes if p.choice is not None}
    assert held == {
        **{n: "AgentNotReporting" for n in ("edge-cpu", "edge-gpu", "edge-npu", "edge-small")},
        "jetson": "AwaitingHardwareReport",
    }


@pytest.mark.parametrize("text", [None, "", "0", "-5", "soon", "1e9", "nan"])
def test_an_unusable_heartbeat_setting_is_the_agents_default(text: str | None) -> None:
    assert reports.heartbeat_setting(text) == reports.AGENT_HEARTBEAT


def test_why_without_a_release_says_why() -> None:
    explained = explaining.explain_node(
        deployment(), "release 2.0 cannot be used (ReleaseNotFound)", small_fleet(), "edge-cpu"
    )
    assert explained is not None
    assert explained.variant is None
    hardware = explaining.node_hardware("edge-cpu", small_fleet())
    out = text(whyview.why_view("edge-cpu", hardware, [explained]))
    assert "ReleaseNotFound" in out


def test_why_lists_only_deployments_that_select_the_node() -> None:
    lab = deployment(name="lab", labels={"rack": "lab"})
    chosen = explaining.selecting([deployment(), lab], small_fleet(), "edge-cpu")
    assert [md.metadata["name"] for md in chosen] == ["md"]
    out = text(whyview.why_view("x", explaining.node_hardware("jetson", small_fleet()), []))
    assert "No ModelDeployment selects node x" in out
    assert "hardware from node labels" in out


# plan ---------------------------------------------------------------------------------------


def test_dry_run_plans_the_first_wave_and_gives_every_node_its_reasons() -> None:
    on_stable = ModelDeploymentStatus(stable_version="1.0", target_version="1.0")
    md = deployment().model_copy(update={"status": on_stable})
    run = explaining.dry_run(md, RELEASES, small_fleet(), T0)
    assert [p.node for p in run.nodes] == [
        "edge-cpu",
        "edge-gpu",
        "edge-npu",
        "edge-small",
        "jetson",
    ]
    asked = [p.node for p in run.nodes if p.planned is not None and p.planned.version == "2.0"]
    assert asked == ["edge-cpu"]  # setNodeCount 1, nodes in name order
    data = whyview.plan_data(run)
    assert data["applied"] is False
    reported = [n for n in data["nodes"] if n["node"] != "jetson"]  # jetson: labels only
    assert all({c["variant"] for c in n["candidates"]} == VARIANTS for n in reported)
    jetson = next(n for n in data["nodes"] if n["node"] == "jetson")
    assert (jetson["variant"], jetson["reason"]) == (None, "AwaitingHardwareReport")
    assert data["variants"] == {"fp16": 1, "fp32": 1, "int8": 1, "int8-npu": 1, "(none)": 1}
    out = text(whyview.plan_view(run))
    assert "nothing was applied" in out
    assert "2.0/fp32 (new)" in out
    assert "fp32: DoesNotFit" in out


def test_dry_run_lists_nodes_the_deployment_would_leave() -> None:
    leaving = edgenode("edge-old", "cpu", desired=[entry("1.0", "fp32")])
    nodes = fleet(edgenode("edge-cpu", "cpu"), leaving)
    nodes = explaining.Fleet(
        {**nodes.nodes, "edge-old": inputs.NodeInfo({"edge": "no"}, 0)}, nodes.edgenodes
    )
    run = explaining.dry_run(deployment(), RELEASES, nodes, T0)
    assert run.removed == ("edge-old",)
    assert "would remove the model from: edge-old" in text(whyview.plan_view(run))


# nodes --------------------------------------------------------------------------------------


def test_nodes_view_shows_hardware_heartbeat_and_models() -> None:
    models = [{"name": "ns/md", "phase": "Ready", "activeVersion": "1.0", "activeVariant": "fp16"}]
    nodes = fleet(
        edgenode("edge-gpu", "gpu", models=models),
        edgenode("edge-npu", "npu", temperature_celsius=61.5),
    )
    out = text(statusview.nodes_view(nodes, T0 + timedelta(seconds=90)))
    for expected in ("edge-gpu", "amd64", "4.0 GiB", "gpu nvidia t4", "1m", "ns/md Ready 1.0/fp16"):
        assert expected in out, out
    assert "62°C" in out
    data = statusview.nodes_data(nodes, T0)
    assert data[0]["models"] == [{"name": "ns/md", "phase": "Ready", "active": "1.0/fp16"}]
    assert data[1]["hardware"]["accelerators"][0]["vendor"] == "hailo"


# steering -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(steering.paused_patch(True), {"spec": {"paused": True}}, id="pause"),
        pytest.param(steering.paused_patch(False), {"spec": {"paused": False}}, id="resume"),
        pytest.param(
            steering.promote_patch(deployment(step=1), full=False),
            {"spec": {"strategy": {"approved": {"version": "2.0", "throughStep": 1}}}},
            id="promote",
        ),
        pytest.param(
            steering.promote_patch(deployment(step=1), full=True),
            {"spec": {"strategy": {"approved": {"version": "2.0", "throughStep": 64}}}},
            id="promote-full",
        ),
        pytest.param(
            steering.abort_patch(deployment(), False), {"spec": {"paused": True}}, id="abort"
        ),
        pytest.param(
            steering.abort_patch(deployment(), True),
            {
                "spec": {
                    "paused": False,
                    "model": {"version": "1.0"},
                    "strategy": {"approved": {"version": "1.0", "throughStep": 64}},
                }
            },
            id="abort-rollback",
        ),
    ],
)
def test_steering_patches_only_spec_fields(patch: dict[str, object], expected: object) -> None:
    assert patch == expected


@pytest.mark.parametrize(
    ("stable", "message"),
    [
        pytest.param("", "no stable version", id="first-rollout"),
        pytest.param("2.0", "already the stable version", id="nothing-to-undo"),
    ],
)
def test_rollback_refuses_without_an_earlier_version(stable: str, message: str) -> None:
    with pytest.raises(steering.SteeringError, match=message):
        steering.abort_patch(deployment(stableVersion=stable), rollback=True)


def test_abort_tells_how_to_roll_back_in_git() -> None:
    hint = steering.gitops_hint(deployment())
    assert "spec.model.version: '1.0'" in hint
    assert "spec.strategy.approved: {version: '1.0', throughStep: 64}" in hint
    assert "kubectl edge-rollout abort md -n ns --rollback" in hint


def merged(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch (what the apiserver applies for --type=merge)."""
    out = dict(document)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_the_rollback_patch_brings_every_node_back_with_the_real_planner() -> None:
    sim = core_fleet(9)
    sim.run()
    assert sim.phase == "Ready"
    sim.change_version("2.0")
    strategy = {"steps": [{"setNodeCount": 3}, {"pause": {}}, {"setNodePercent": 100}]}
    sim.spec = sim.spec.model_validate(
        merged(sim.spec.model_dump(by_alias=True), {"strategy": strategy})
    )
    sim.run()
    assert sim.status.current_step_index == 1  # waiting at the pause
    on_new = [n.name for n in sim.nodes if n.desired and n.desired.version == "2.0"]
    assert len(on_new) == 3
    md = ModelDeployment(
        spec=sim.spec, status=sim.status, metadata={"name": "md", "namespace": "ns"}
    )
    patch = steering.abort_patch(md, rollback=True)
    sim.spec = sim.spec.model_validate(merged(sim.spec.model_dump(by_alias=True), patch["spec"]))
    sim.generation += 1
    sim.run()
    assert sim.phase == "Ready"
    assert {(n.desired.version if n.desired else None) for n in sim.nodes} == {"1.0"}


# parsing and formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        pytest.param(["status", "md", "-n", "ns", "-o", "json"], kubectl.status, id="status"),
        pytest.param(["why", "edge-1"], kubectl.why_command, id="why"),
        pytest.param(["why", "edge-1", "md", "--context", "lab"], kubectl.why_command, id="why-md"),
        pytest.param(["nodes", "--kubeconfig", "/k"], kubectl.nodes, id="nodes"),
        pytest.param(["promote", "md", "--full"], kubectl.promote, id="promote"),
        pytest.param(["abort", "md", "--rollback"], kubectl.abort, id="abort"),
    ],
)
def test_parser_wires_each_command(argv: list[str], handler: object) -> None:
    assert kubectl.build_parser().parse_args(argv).handler is handler


def test_help_says_the_controls_are_spec_fields_gitops_can_set() -> None:
    assert "GitOps" in kubectl.build_parser().format_help()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0 B"),
        (1000, "1000 B"),
        (3 << 29, "1.5 GiB"),
        (150 * MIB, "150 MiB"),
        (16 * GIB, "16.0 GiB"),
    ],
)
def test_human_bytes(value: int, expected: str) -> None:
    assert fmt.human_bytes(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(5, "5s"), (90, "1m"), (7200, "2h"), (3 * 86400, "3d")]
)
def test_age(seconds: int, expected: str) -> None:
    assert fmt.age("2026-11-01T00:00:00Z", T0 + timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize("module", [fmt, steering], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: lab, context: {cluster: c, user: u, namespace: edge-lab}}
- {name: plain, context: {cluster: c, user: u}}
current-context: lab
"""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["status", "md"], "edge-lab", id="current-context-namespace"),
        pytest.param(["status", "md", "--context", "plain"], "default", id="context-without-one"),
        pytest.param(["status", "md", "-n", "ns"], "ns", id="flag-wins"),
    ],
)
def test_namespace_follows_kubectl(tmp_path: Path, argv: list[str], expected: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    args = kubectl.build_parser().parse_args([*argv, "--kubeconfig", str(path)])
    assert options.namespace(args) == expected
