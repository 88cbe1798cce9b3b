"""Truthful rollout accounting: the planner against the real agent's vocabulary (every phase and
every failure reason the agent reports), rollbacks that finish, Ready only when it is true, and
a status whose message, conditions, counts and worstNodes cannot disagree."""

from __future__ import annotations

from datetime import timedelta
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api import reasons
from edge_rollout.api.edgenode import ModelError, ModelPhase, ModelStatus
from edge_rollout.api.modeldeployment import Abort, ModelDeploymentStatus, PhaseCounts
from edge_rollout.core import fleet as fleet_core
from edge_rollout.core import planning, selection, status, steps, summary
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.fleet import NodeOutcome
from edge_rollout.core.outcomes import Rollout
from tests.unit.core.fixtures import MIB, T0, Fleet, fleet, hardware, release, spec, variant
from tests.unit.core.test_planning import installed

ALL_VARIANTS = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))


def conditions(f: Fleet) -> dict[str, str]:
    return {c.type: c.status for c in f.status.conditions}


def asked(phase: str, reason: str = "") -> tuple[Fleet, planning.Plan]:
    """A fleet of one CPU node asked for 2.0/fp32, whose agent reports `phase` (with `reason`
    when Failed) for that entry, long enough ago to be past minReadySeconds."""
    f = installed(1)
    f.nodes[0].hardware = hardware("cpu")
    f.apply(f.plan())
    node = f.nodes[0]
    assert node.desired is not None
    assert node.desired.version == "2.0"
    serving = phase in ("Ready", "RolledBack")
    node.reported = ModelStatus(
        name=node.desired.name,
        phase=phase,  # type: ignore[arg-type]
        version="2.0",
        variant=node.desired.variant,
        active_version="2.0" if serving else "1.0",
        active_variant=node.desired.variant if serving else "fp32",
        ready_since=rfc3339(f.now - timedelta(minutes=5)) if serving else "",
        last_error=ModelError(reason=reason or "LoadFailed", message="m")
        if phase == "Failed"
        else None,
    )
    f.now += timedelta(seconds=5)
    return f, f.plan()


@pytest.mark.parametrize("phase", get_args(ModelPhase))
def test_every_phase_the_agent_reports_has_a_meaning(phase: str) -> None:
    """Ready and RolledBack serve the target (done); Failed falls back to the next variant; every
    other phase is work in progress."""
    f, plan = asked(phase)
    entry = plan.desired["node-000"]
    assert entry is not None
    if phase in ("Ready", "RolledBack"):
        assert plan.status.phase == "Ready", plan.status.message
        assert plan.status.counts.succeeded == 1
    elif phase == "Failed":
        assert entry.excluded_variants == [f.nodes[0].desired.variant]  # type: ignore[union-attr]
        assert [e.reason for e in plan.events].count("VariantFallback") == 1
    else:
        assert plan.status.phase == "Progressing"
        assert plan.status.counts.pending == 1
        assert entry == f.nodes[0].desired


@pytest.mark.parametrize("reason", sorted(reasons.FAILURES))
def test_every_failure_reason_the_agent_reports_has_a_scope(reason: str) -> None:
    """Variant-specific failures fall back to another variant; release-wide ones fail the node
    (every variant would fail); transient ones stay in progress (the agent retries)."""
    _f, plan = asked("Failed", reason)
    fallbacks = [e for e in plan.events if e.reason == "VariantFallback"]
    scope = reasons.failure_scope(reason)
    if scope == "variant":
        assert len(fallbacks) == 1
        assert reason in fallbacks[0].message
    elif scope == "release":
        assert not fallbacks
        assert plan.status.counts.failed == 1
        assert plan.status.worst_nodes[0].reason == reason
    else:
        assert not fallbacks
        assert (plan.status.counts.failed, plan.status.counts.pending) == (0, 1)


def test_the_vocabulary_has_no_overlaps() -> None:
    groups = [reasons.VARIANT_SPECIFIC, reasons.RELEASE_WIDE, reasons.TRANSIENT, reasons.WAITING]
    assert sum(map(len, groups)) == len(frozenset().union(*groups))


def test_a_test_vector_mismatch_tries_no_other_variant() -> None:
    f = installed(3)
    for node in f.nodes:
        node.broken, node.fail_reason = ALL_VARIANTS, "TestVectorMismatch"
    f.apply(f.plan())
    f.run()
    assert not [e for e in f.events if e.reason == "VariantFallback"]
    assert f.phase == "RolledBack"


def test_a_manual_rollback_finishes_as_soon_as_the_nodes_report() -> None:
    """`abort --rollback` writes the stable version into spec: nodes switch back from disk and
    report RolledBack, which is done (no minReadySeconds, no progress deadline, no fallback)."""
    f = installed(4, steps=[{"setNodeCount": 2}, {"pause": {}}])
    f.apply(f.plan())
    f.run(ticks=20)
    assert f.status.current_step_index == 1
    f.change_version("1.0")
    f.apply(f.plan())
    f.run(ticks=6)
    assert f.phase == "Ready", f.status.message
    assert {n.reported.phase for n in f.nodes if n.reported} <= {"Ready", "RolledBack"}
    assert "RolledBack" in {n.reported.phase for n in f.nodes if n.reported}
    assert not [e for e in f.events if e.reason == "VariantFallback"]
    assert f.now - T0 < timedelta(seconds=300)


def test_every_node_too_small_is_degraded_and_not_ready() -> None:
    f = fleet(3)
    for node in f.nodes:
        node.hardware = hardware("cpu", memory=32 * MIB)
    f.apply(f.plan())
    f.run(ticks=5)
    assert f.phase == "Degraded"
    assert conditions(f)["Ready"] == "False"
    assert conditions(f)["Degraded"] == "True"
    ready = next(c for c in f.status.conditions if c.type == "Ready")
    assert ready.reason == "NoFittingVariant"
    assert "0/3 nodes on 1.0, 3 failed (3 with no fitting variant)" in f.status.message


def test_one_node_too_small_is_degraded_but_ready_for_the_rest() -> None:
    f = fleet(3)
    f.nodes[0].hardware = hardware("cpu", memory=32 * MIB)
    f.apply(f.plan())
    f.run()
    assert f.phase == "Degraded"
    assert (conditions(f)["Ready"], conditions(f)["Degraded"]) == ("True", "True")


def test_a_node_without_an_agent_is_no_agent_not_three_fallbacks() -> None:
    f = fleet(3)
    silent = f.nodes[2]
    silent.agent_step = lambda now, delay: None  # type: ignore[method-assign]
    f.apply(f.plan())
    f.run(ticks=200, seconds=10)
    assert not [e for e in f.events if e.reason == "VariantFallback"]
    assert f.phase == "Degraded", f.status.message
    assert next(c for c in f.status.conditions if c.type == "Degraded").reason == "NoAgent"
    assert [(w.node, w.reason) for w in f.status.worst_nodes] == [("node-002", "NoAgent")]
    assert "1 with no agent" in f.status.message


def test_the_default_abort_rule_stops_when_every_finished_node_failed() -> None:
    f = installed(4)
    f.spec = f.spec.model_copy(update={"abort": Abort()})
    for node in f.nodes:
        node.broken = ALL_VARIANTS
    f.apply(f.plan())
    f.run()
    assert f.phase == "RolledBack"
    assert "default abort rule" in f.status.abort_reason


def test_the_default_abort_rule_lets_partial_failure_finish() -> None:
    f = installed(4)
    f.spec = f.spec.model_copy(update={"abort": Abort()})
    f.nodes[3].broken = ALL_VARIANTS
    f.apply(f.plan())
    f.run()
    assert f.phase == "Degraded"
    assert conditions(f)["Ready"] == "False"  # node-003 could run a variant and does not
    assert next(c for c in f.status.conditions if c.type == "Ready").reason == "NodesFailed"


def test_an_abort_keeps_the_evidence_until_the_next_version() -> None:
    f = installed(6)
    for node in f.nodes:
        node.broken = ALL_VARIANTS
    f.apply(f.plan())
    f.run()
    assert f.phase == "RolledBack"
    for _ in range(5):
        f.tick()
    assert f.status.counts.failed >= 2
    assert f.status.worst_nodes
    assert all(w.since for w in f.status.worst_nodes)
    assert f"{f.status.counts.failed} node(s) failed" in f.status.message
    f.change_version("3.0")
    f.apply(f.plan())
    assert (f.status.counts.failed, f.status.worst_nodes) == (0, [])


def aborted_without(stable: bool, policy: str = "Rollback") -> Fleet:
    """Four nodes on 1.0 asked for 2.0, every variant of which fails, until the rollout aborts;
    the stable release 1.0 loads only when `stable` (else, as when it was deleted from the store,
    the operator's releases hold the target's alone)."""
    f = installed(4)
    f.spec = f.spec.model_copy(
        update={"abort": f.spec.abort.model_copy(update={"failure_handling_policy": policy})}
    )
    for node in f.nodes:
        node.broken = ALL_VARIANTS
    if not stable:
        del f.releases["1.0"]
    f.apply(f.plan())
    f.run()
    assert f.status.abort_reason, f.status.message
    return f


def reasons_of(f: Fleet) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in f.status.conditions}


def test_an_abort_whose_stable_release_is_missing_is_failed_not_rolled_back() -> None:
    f = aborted_without(stable=False)
    asked = [n.name for n in f.nodes if n.desired and n.desired.version == "2.0"]
    assert asked  # the nodes asked for 2.0 were not asked back: nothing to go back to
    assert f.phase == "Failed"
    why = summary.STABLE_RELEASE_UNAVAILABLE
    assert reasons_of(f) == {
        "Ready": ("False", why),
        "Progressing": ("False", why),
        "Degraded": ("True", why),
        "Stalled": ("True", why),
        "Reconciling": ("False", why),
    }
    message = f.status.message
    assert message.startswith("modeldeployment ns/md: rollout of 2.0 aborted:"), message
    assert "the stable release m@1.0 cannot be loaded from spec.model.store" in message
    assert "publish m@1.0 to the store again" in message
    assert "or set spec.model.version to a fixed version" in message
    assert f"{f.status.counts.failed} node(s) failed" in message
    failed = [e for e in f.events if e.reason == "RolloutFailed"]
    assert [e.message for e in failed] == [message]
    assert not [e for e in f.events if e.reason == "RolledBack"]


def test_the_stable_release_published_again_rolls_the_nodes_back() -> None:
    f = aborted_without(stable=False)
    f.releases["1.0"] = release("1.0")
    f.tick()
    assert f.phase == "RolledBack"
    assert all(n.desired and n.desired.version == "1.0" for n in f.nodes)
    assert reasons_of(f)["Degraded"] == ("True", "RolledBack")


@pytest.mark.parametrize(
    ("stable", "policy", "phase", "reason"),
    [
        pytest.param(True, "Rollback", "RolledBack", "RolledBack", id="rollback-to-a-release"),
        pytest.param(False, "Rollback", "Failed", "StableReleaseUnavailable", id="no-release"),
        pytest.param(True, "Pause", "Failed", "RolloutAborted", id="pause"),
        pytest.param(False, "Pause", "Failed", "RolloutAborted", id="pause-no-release"),
    ],
)
def test_the_phase_after_an_abort_says_where_the_nodes_are(
    stable: bool, policy: str, phase: str, reason: str
) -> None:
    f = aborted_without(stable, policy)
    assert (f.phase, reasons_of(f)["Ready"]) == (phase, ("False", reason))
    back = all(n.desired and n.desired.version == "1.0" for n in f.nodes)
    assert back == (phase == "RolledBack")


def test_a_pause_step_is_paused_and_still_progressing() -> None:
    f = installed(4, steps=[{"setNodeCount": 1}, {"pause": {}}])
    f.apply(f.plan())
    f.run(ticks=20)
    assert f.phase == "Paused"
    assert conditions(f)["Progressing"] == "True"
    assert next(c for c in f.status.conditions if c.type == "Ready").reason == "RolloutPausedAtStep"


def test_a_missing_release_has_a_phase() -> None:
    found = status.stalled_status(
        ModelDeploymentStatus(), generation=3, reason="ReleaseNotFound", message="m", now=T0
    )
    assert found.phase == "Degraded"


# --- one summary: message, conditions, counts and worstNodes agree --------------------------

REPORTS = st.one_of(
    st.none(),
    st.builds(
        lambda phase, reason: ModelStatus(
            name="ns/md",
            phase=phase,
            version="2.0",
            variant="fp32",
            last_error=ModelError(reason=reason, message="m") if phase == "Failed" else None,
            last_transition_time="2026-11-01T00:00:00Z",
        ),
        st.sampled_from(get_args(ModelPhase)),
        st.sampled_from(sorted(reasons.FAILURES)),
    ),
)
CHOICES = st.builds(
    lambda variant, reason: selection.Choice("n", variant, reason, "why"),
    st.sampled_from([None, "fp32"]),
    st.sampled_from(["DoesNotFit", "AwaitingHardwareReport", "AgentNotReporting", "Best"]),
)
OUTCOMES = st.lists(
    st.tuples(
        st.sampled_from(["old", "updating", "updated", "failed", "unschedulable"]),
        REPORTS,
        CHOICES,
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(
    found=OUTCOMES,
    index=st.integers(min_value=0, max_value=2),
    aborted=st.booleans(),
    paused=st.booleans(),
    previous_failed=st.integers(min_value=0, max_value=30),
    stable_release=st.booleans(),
    policy=st.sampled_from(["Rollback", "Pause"]),
)
def test_message_conditions_counts_and_worst_nodes_agree(
    found: list[tuple[str, ModelStatus | None, selection.Choice]],
    index: int,
    aborted: bool,
    paused: bool,
    previous_failed: int,
    stable_release: bool,
    policy: str,
) -> None:
    outcomes = [
        NodeOutcome(f"node-{i:03d}", state, None, choice, reported)  # type: ignore[arg-type]
        for i, (state, reported, choice) in enumerate(found)
    ]
    md_spec = spec(steps=[{"setNodeCount": 1}, {"pause": {}}])
    abort = md_spec.abort.model_copy(update={"failure_handling_policy": policy})
    md_spec = md_spec.model_copy(update={"paused": paused, "abort": abort})
    previous = ModelDeploymentStatus(
        target_version="2.0", counts=PhaseCounts(failed=previous_failed)
    )
    deployment = planning.Deployment("ns/md", 2, md_spec, previous)
    rollout = Rollout("1.0", "2.0", steps.StepProgress(index, T0), "too many" if aborted else None)
    tally = fleet_core.tally(outcomes, "2.0")
    result, _ = summary.summarize(
        deployment, rollout, tally, tally.bad, T0, stable_release=stable_release
    )
    counts, true = result.counts, {c.type for c in result.conditions if c.status == "True"}
    bad = {o.node for o in tally.bad}
    assert counts.targeted == len(outcomes)
    assert counts.succeeded + counts.failed + counts.pending == counts.targeted or aborted
    assert counts.failed >= len(bad)
    assert {w.node for w in result.worst_nodes} <= bad
    assert len(result.worst_nodes) == min(len(bad), summary.WORST_NODES)
    assert ("Degraded" in true) == (counts.failed > 0 or aborted)
    if "Ready" in true:
        assert not aborted
        assert result.phase in ("Ready", "Degraded")
        required = counts.targeted - sum(
            summary.kind(o) in (summary.NO_AGENT, summary.NO_FITTING_VARIANT) for o in tally.bad
        )
        assert counts.succeeded >= required
        assert counts.succeeded > 0 or counts.targeted == 0
    if outcomes and not aborted:
        assert f", {counts.failed} failed" in result.message
    if aborted:
        assert f"{counts.failed} node(s) failed" in result.message
    if result.phase == "RolledBack":  # only back to a stable release that loads
        assert aborted
        assert stable_release
        assert policy == "Rollback"
    if aborted and policy == "Rollback" and not stable_release:
        assert result.phase == "Failed"
        assert {c.reason for c in result.conditions} == {summary.STABLE_RELEASE_UNAVAILABLE}
        assert "modeldeployment ns/md:" in result.message
        assert "publish m@1.0" in result.message
    assert result.phase
    assert len({c.reason for c in result.conditions}) == 1


def test_a_version_no_node_runs_never_becomes_stable() -> None:
    f = installed(3)
    for node in f.nodes:
        node.hardware = hardware("cpu", memory=32 * MIB)
    f.apply(f.plan())
    f.run(ticks=5)
    assert f.phase == "Degraded"
    assert f.status.stable_version == "1.0"


def test_a_node_no_stable_variant_fits_does_not_stay_on_the_aborted_version() -> None:
    """A rollback puts every node where the stable fleet has it: on a stable variant, or (none
    fits it, say it joined during the rollout) off the deployment, listed as NoFittingVariant.
    Left on the aborted version, the status would say RolledBack while it runs 2.0."""
    f = installed(4)
    for node in f.nodes:
        node.broken = ALL_VARIANTS
    f.apply(f.plan())
    asked = next(n for n in f.nodes if n.desired and n.desired.version == "2.0")
    asked.hardware = hardware("cpu", memory=512 * MIB)  # 2.0's int8 fits it
    f.releases["1.0"] = release("1.0", variant("fp32", memory=1024 * MIB))  # 1.0's does not
    f.run()
    assert f.phase == "RolledBack", f.status.message
    versions = {n.name: n.desired.version if n.desired else None for n in f.nodes}
    assert versions == {n.name: None if n is asked else "1.0" for n in f.nodes}
    assert f.status.message.endswith(
        f"nodes run 1.0 until spec.model.version changes; 1 node(s) run no version of it: no"
        f" variant of m@1.0 fits them ({asked.name})"
    ), f.status.message
    assert {w.node for w in f.status.worst_nodes} >= {asked.name}  # the abort's evidence stays
