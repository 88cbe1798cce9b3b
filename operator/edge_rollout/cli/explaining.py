"""Why a node gets the variant it gets, and what a ModelDeployment file would do: pure.

Composes the operator's own decisions (`core.inputs` to build the planner's view of a node,
`core.selection` to choose, `core.planning` for a dry run), so the answers match what the operator
does with the same objects. Reads no cluster and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge_rollout.api.edgenode import DesiredModel, EdgeNode, Hardware, ModelStatus
from edge_rollout.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from edge_rollout.api.release import Release
from edge_rollout.core import caching, inputs, outcomes, planning, reports, selection
from edge_rollout.core import labels as node_labels
from edge_rollout.core.fleet import Event
from edge_rollout.core.values import Selection


@dataclass(frozen=True)
class Fleet:
    """The nodes as read from the cluster: Node facts and EdgeNodes, by name."""

    nodes: Mapping[str, inputs.NodeInfo]
    edgenodes: Mapping[str, EdgeNode]
    heartbeat: timedelta = reports.AGENT_HEARTBEAT
    """The agents' heartbeat: a node silent for 4 of them is NoAgent, as the operator holds it."""
    cache: caching.PlannerCache = field(
        default_factory=caching.PlannerCache, compare=False, repr=False
    )
    """Node views shared by every deployment asked about (saves work, changes no answer)."""

    @property
    def heard(self) -> reports.Heard:
        """When each agent last reported, by its EdgeNode's heartbeatTime (on the node's clock:
        the operator itself counts from when it saw each heartbeat arrive)."""
        return reports.heard_from_heartbeats(self.edgenodes, self.heartbeat)


@dataclass(frozen=True)
class Candidate:
    """One variant of the release and what selection said about it on one node."""

    variant: str
    chosen: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Explanation:
    """The selection of one deployment's target release on one node, with the node's side."""

    deployment: str
    node: str
    selected: bool
    version: str
    variant: str | None = None
    reason: str = ""
    message: str = ""
    candidates: tuple[Candidate, ...] = ()
    budget: int | None = None
    claims: tuple[DesiredModel, ...] = ()
    excluded: tuple[str, ...] = ()
    hardware: Hardware | None = None
    desired: DesiredModel | None = None
    reported: ModelStatus | None = None

    @property
    def hardware_source(self) -> str:
        return "unknown" if self.hardware is None else hardware_source(self.hardware)


@dataclass(frozen=True)
class PlannedNode:
    """One selected node in a dry run: what it has, what it would be asked for now, and why."""

    node: str
    current: DesiredModel | None
    planned: DesiredModel | None
    choice: selection.Choice | None

    @property
    def changes(self) -> bool:
        return _pair(self.current) != _pair(self.planned)


@dataclass(frozen=True)
class DryRun:
    """What applying a ModelDeployment would do against the current fleet; nothing is written."""

    deployment: str
    version: str
    nodes: tuple[PlannedNode, ...]
    removed: tuple[str, ...]
    status: ModelDeploymentStatus
    events: tuple[Event, ...]


def deployment_key(md: ModelDeployment) -> str:
    """`<namespace>/<name>`, the key of the deployment's EdgeNode entries."""
    meta = md.metadata
    return inputs.deployment_key(str(meta.get("namespace") or "default"), str(meta.get("name")))


def with_public_key(md: ModelDeployment, key: str) -> ModelDeployment:
    """`md` with spec.model.store.publicKey set (for releases signed by the operator's key)."""
    model = md.spec.model
    store = model.store.model_copy(update={"public_key": key})
    spec = md.spec.model_copy(update={"model": model.model_copy(update={"store": store})})
    return md.model_copy(update={"spec": spec})


def node_inputs(md: ModelDeployment, fleet: Fleet) -> list[planning.NodeInput]:
    """The planner's view of every node the deployment could run on, as the operator builds it."""
    selector = md.spec.node_selector
    selector_empty = not selector.match_labels and not selector.match_expressions
    return inputs.node_inputs(
        deployment_key(md),
        md.spec.priority,
        selector_empty,
        fleet.nodes,
        fleet.edgenodes,
        cache=fleet.cache,
    )


def selects(md: ModelDeployment, node: planning.NodeInput) -> bool:
    """The deployment's nodeSelector matches the node."""
    return node_labels.selector_matches(md.spec.node_selector, node.labels)


def selecting(mds: Sequence[ModelDeployment], fleet: Fleet, node: str) -> list[ModelDeployment]:
    """The deployments whose selector picks `node` (an empty selector needs an EdgeNode)."""
    return [
        md for md in mds if any(n.name == node and selects(md, n) for n in node_inputs(md, fleet))
    ]


def node_hardware(name: str, fleet: Fleet) -> Hardware:
    """What the agent reports, or (no report yet) what the Node's labels say, as the operator
    reads it (`core.inputs`)."""
    nodes = {name: fleet.nodes[name]} if name in fleet.nodes else {}
    edgenodes = {name: fleet.edgenodes[name]} if name in fleet.edgenodes else {}
    found = inputs.node_inputs("", 0, False, nodes, edgenodes)
    return found[0].hardware if found else node_labels.hardware_from_labels({}, 0)


def hardware_source(hardware: Hardware) -> str:
    """`agent report` or `node labels`."""
    return "node labels" if hardware.profile == node_labels.LABELS_PROFILE else "agent report"


def explain_node(
    md: ModelDeployment,
    release: Release | str,
    fleet: Fleet,
    node: str,
    now: datetime | None = None,
) -> Explanation | None:
    """The explanation for `node` (None when the deployment cannot run there at all).

    `release` is the target release, or why it could not be read; with `now`, a node whose agent
    went silent is explained as the planner holds it (AgentNotReporting).
    """
    found = next((n for n in node_inputs(md, fleet) if n.name == node), None)
    if found is None:
        return None
    if isinstance(release, str):
        return unexplained(md, found, release)
    return explain(md, release, found, fleet.heard if now is not None else None, now)


def explain(
    md: ModelDeployment,
    release: Release,
    node: planning.NodeInput,
    heard: reports.Heard | None = None,
    now: datetime | None = None,
) -> Explanation:
    """Re-run selection of `release` for `node`, exactly as the planner does for the target.

    Memory already claimed on the node by deployments of higher priority is subtracted first, and
    variants that failed on the node for this version are excluded (the planner's fall-back). A
    node whose agent was last heard from more than 4 heartbeats before `now` is held, not asked.
    """
    policy = md.spec.selection
    desired = node.desired
    on_target = desired is not None and desired.version == release.version
    excluded = tuple(desired.excluded_variants) if desired and on_target else ()
    budget = selection.memory_budget(node.hardware, policy, node.claims)
    facts = selection.NodeFacts(node.name, node.labels, node.hardware)
    choice = selection.select_variant(facts, release, policy, budget, excluded)
    if node.hardware.profile == node_labels.LABELS_PROFILE:  # as the planner: no variant yet
        choice = outcomes.awaiting_report(node.name)
    elif now is not None:
        _, held = reports.hold_silent(Selection((node,), (), True), heard, now)
        choice = held[0].choice if held and held[0].choice is not None else choice
    return Explanation(
        deployment=deployment_key(md),
        node=node.name,
        selected=selects(md, node),
        version=release.version,
        variant=choice.variant,
        reason=choice.reason,
        message=choice.message,
        candidates=candidates(choice),
        budget=budget,
        claims=node.claims,
        excluded=excluded,
        hardware=node.hardware,
        desired=desired,
        reported=node.reported,
    )


def unexplained(md: ModelDeployment, node: planning.NodeInput, why: str) -> Explanation:
    """An explanation without a selection (the release could not be read): says why."""
    return Explanation(
        deployment=deployment_key(md),
        node=node.name,
        selected=selects(md, node),
        version=md.spec.model.version,
        reason="ReleaseUnavailable",
        message=why,
        hardware=node.hardware,
        desired=node.desired,
        reported=node.reported,
    )


def candidates(choice: selection.Choice) -> tuple[Candidate, ...]:
    """Every variant of the release, by name: the chosen one and each rejection with its reason."""
    rows = [Candidate(r.variant, False, r.reason, r.message) for r in choice.rejections]
    if choice.variant is not None:
        rows.append(Candidate(choice.variant, True, choice.reason, choice.message))
    return tuple(sorted(rows, key=lambda c: c.variant))


def dry_run(
    md: ModelDeployment,
    releases: Mapping[str, Release],
    fleet: Fleet,
    now: datetime,
    generation: int = 1,
) -> DryRun:
    """Plan `md` once against `fleet` (with the status it has in the cluster, if any).

    The plan is the operator's: the first wave (within steps and maxUnavailable) is what would be
    asked now; every selected node gets its choice of the target release with reasons.
    """
    key = deployment_key(md)
    nodes = node_inputs(md, fleet)
    deployment = planning.Deployment(key, generation, md.spec, md.status)
    plan = planning.plan_rollout(deployment, releases, nodes, now, heard=fleet.heard)
    by_name = {n.name: n for n in nodes}
    planned = tuple(
        PlannedNode(name, by_name[name].desired, entry, plan.choices.get(name))
        for name, entry in sorted(plan.desired.items())
        if name in plan.choices or entry is not None
    )
    removed = tuple(
        sorted(n for n, e in plan.desired.items() if e is None and n not in plan.choices)
    )
    return DryRun(key, md.spec.model.version, planned, removed, plan.status, plan.events)


def pair_text(entry: DesiredModel | ModelStatus | None, active: bool = False) -> str:
    """`2.0/int8` for an entry or a report (its active pair with `active`), `-` for none."""
    if entry is None:
        return "-"
    if active and isinstance(entry, ModelStatus):
        version, variant = entry.active_version, entry.active_variant
    else:
        version, variant = entry.version, entry.variant
    return f"{version}/{variant}" if version else "-"


def _pair(entry: DesiredModel | None) -> tuple[str, str] | None:
    return (entry.version, entry.variant) if entry else None
