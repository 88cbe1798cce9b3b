"""The planner's memory between plans, as one explicit object its owner passes in.

Pure bookkeeping, no decisions: `PlannerCache` holds the fleet's node views (shared by every
deployment) and, per deployment, its last gathering, node order, outcomes and facts about its
nodes. Planning with a cache gives exactly the plan that planning without one (`cache=None`, the
reference) gives; the cache only saves work. The operator owns one per process
(`controller/handlers.py`) and calls `forget` when a ModelDeployment is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_rollout.core import gathering, memo, ordering, replanning


@dataclass
class DeploymentMemo:
    """What the planner keeps about one deployment between its plans (one plan of a deployment
    at a time: the operator holds a lock per deployment while it plans)."""

    gathered: gathering.Gathered | None = None
    ordered: ordering.Ordered | None = None
    judged: replanning.Judgement | None = None
    nodes: memo.NodeMemo = field(default_factory=memo.NodeMemo)


class PlannerCache:
    """Everything the planner remembers, bounded: node views for the nodes in the fleet, and
    the `limit` most recently planned deployments (the least recently planned are forgotten
    first, as a deleted one is at once by `forget`).

    >>> cache = PlannerCache(limit=2)
    >>> for key in ("ns/a", "ns/b", "ns/c"):
    ...     _ = cache.deployment(key)
    >>> sorted(cache.deployments())
    ['ns/b', 'ns/c']
    """

    def __init__(self, limit: int = memo.LIMIT) -> None:
        self.views = gathering.NodeViews()
        self.limit = limit
        self._deployments: dict[str, DeploymentMemo] = {}

    def deployment(self, key: str) -> DeploymentMemo:
        """The memo of the deployment `key` (empty when new), now the most recently used."""
        found = self._deployments.get(key) or DeploymentMemo()
        for stale in memo.remember(self._deployments, key, found, self.limit):
            self.views.forget(stale)
        return found

    def forget(self, key: str) -> None:
        """Forget the deployment `key` (deleted): its memo and the NodeInputs built for it."""
        self._deployments.pop(key, None)
        self.views.forget(key)

    def deployments(self) -> list[str]:
        """The deployments remembered, least recently planned first."""
        return list(self._deployments)

    def holds(self, key: str) -> bool:
        """Anything is remembered for the deployment `key`."""
        return key in self._deployments or self.views.holding(key) > 0
