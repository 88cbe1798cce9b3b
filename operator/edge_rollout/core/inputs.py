"""The planner's view of the fleet, built from the objects the operator (or the CLI) has read.

Pure: takes parsed EdgeNodes and Node facts, returns `NodeInput`s (see `gathering`). Given the
caller's `caching.PlannerCache`, only nodes whose objects changed since the deployment's last
gathering are visited again; without one (the reference) every node is, with the same result.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_rollout.api.common import LabelSelector
from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.core import caching, gathering
from edge_rollout.core import labels as node_labels
from edge_rollout.core.values import NodeInfo as NodeInfo
from edge_rollout.core.values import NodeInput


def deployment_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def node_inputs(
    key: str,
    priority: int,
    selector_empty: bool,
    nodes: Mapping[str, NodeInfo],
    edgenodes: Mapping[str, EdgeNode],
    selector: LabelSelector | None = None,
    cache: caching.PlannerCache | None = None,
) -> list[NodeInput]:
    """Every node the deployment could run on, with its entries and hardware.

    An empty selector means every node with an agent (an EdgeNode), not every Node. Given the
    deployment's `selector`, only the nodes `plan_rollout` acts on are returned: those the
    selector matches and those that hold an entry of `key` (to be removed); the plan is the same.
    """
    selector_key = node_labels.selector_key(selector) if selector is not None else ""
    wanted = (key, priority, selector_empty, selector, selector_key)
    if cache is None:
        return gathering.gather(wanted, nodes, edgenodes, gathering.NodeViews()).result
    memo = cache.deployment(key)
    memo.gathered = gathering.gather(wanted, nodes, edgenodes, cache.views, memo.gathered)
    return list(memo.gathered.result)
