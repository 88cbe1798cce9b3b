"""The planner's value types: what goes into a plan and what comes out, frozen, compared by value.

The bottom of `core`: imports only `api`, and every planner module imports its types from here
(one way; no module here knows the planner). No memo lives on a value: what the planner
remembers between plans is in `caching.PlannerCache`, passed in by its owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from edge_rollout.api.edgenode import DesiredModel, Hardware, ModelStatus
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus

NodeState = Literal["old", "updating", "updated", "failed", "unschedulable"]


@dataclass(frozen=True)
class NodeInfo:
    """What the operator keeps of a Node object."""

    labels: Mapping[str, str]
    allocatable_memory: int


@dataclass(frozen=True)
class NodeInput:
    """One node as gathered: its labels and hardware, and this deployment's entries on it."""

    name: str
    labels: Mapping[str, str]
    hardware: Hardware
    desired: DesiredModel | None = None
    reported: ModelStatus | None = None
    claims: tuple[DesiredModel, ...] = ()
    """Entries of other deployments that take precedence on this node (memory packing)."""
    report_problem: str = ""
    """Why the agent's report cannot be used (`reports.read_edgenode`); "" when it can."""
    same_model: tuple[str, ...] = ()
    """Other deployments with an entry of the same model on this node."""


@dataclass(frozen=True)
class NodeFacts:
    """What variant selection needs to know about one node."""

    name: str
    labels: Mapping[str, str]
    hardware: Hardware


@dataclass(frozen=True)
class Deployment:
    """The ModelDeployment being planned."""

    key: str
    """`<namespace>/<name>`, the key of its EdgeNode entries."""
    generation: int
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Rejection:
    """Why one candidate variant was not chosen for a node."""

    variant: str
    reason: str
    message: str


@dataclass(frozen=True)
class Choice:
    """The variant a node gets (None when nothing fits), with reasons for every candidate."""

    node: str
    variant: str | None
    reason: str
    message: str
    rejections: tuple[Rejection, ...] = ()
    memory_bytes: int = 0

    def for_node(self, node: str) -> Choice:
        """The same choice for another node with an equal profile."""
        if node == self.node:
            return self
        return Choice(
            node, self.variant, self.reason, self.message, self.rejections, self.memory_bytes
        )


@dataclass(frozen=True)
class NodeOutcome:
    """Where one selected node stands with the target version, and the entry it should have."""

    node: str
    state: NodeState
    desired: DesiredModel | None
    choice: Choice | None
    reported: ModelStatus | None


@dataclass(frozen=True)
class Selection:
    """The nodes a plan acts on."""

    nodes: tuple[NodeInput, ...]
    """The selected nodes, in the order they are asked."""
    removed: tuple[str, ...]
    """Nodes not selected that hold an entry (in the order given), to be removed."""
    unique: bool
    """No two selected nodes have the same name."""


@dataclass(frozen=True)
class StepProgress:
    """Where the rollout is: the step in progress and when it started."""

    index: int
    started: datetime


@dataclass(frozen=True)
class Rollout:
    """Where the deployment's rollout stands: from which version to which, the step, the
    verdict."""

    stable: str
    target: str
    progress: StepProgress
    verdict: str | None
    """Why the rollout is aborted; None while it is not."""

    @property
    def aborted(self) -> bool:
        return self.verdict is not None


@dataclass(frozen=True)
class Plan:
    """What to write: EdgeNode entries (None removes one), the status, the events."""

    desired: dict[str, DesiredModel | None]
    status: ModelDeploymentStatus
    events: tuple[Event, ...]
    choices: dict[str, Choice] = field(default_factory=dict)
    """Each selected node's choice of the target, held nodes (unusable report, silent agent)
    with why they are held."""
