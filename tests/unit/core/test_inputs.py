"""The planner's view of the fleet: memoized per node, always equal to building it afresh."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.edgenode import DesiredModel, EdgeNode
from edge_rollout.core import caching, inputs, planning
from edge_rollout.core import labels as node_labels
from edge_rollout.core import reports as node_reports
from tests.unit.core.fixtures import GIB, hardware


def reference(
    key: str,
    priority: int,
    selector_empty: bool,
    nodes: Mapping[str, inputs.NodeInfo],
    edgenodes: Mapping[str, EdgeNode],
) -> list[planning.NodeInput]:
    """node_inputs as first written: every NodeInput built from scratch."""
    names = set(edgenodes) if selector_empty else set(nodes) | set(edgenodes)
    result = []
    for name in sorted(names):
        info, edgenode = nodes.get(name), edgenodes.get(name)
        labels = info.labels if info else metadata_labels(edgenode)
        entries = edgenode.spec.models if edgenode else []
        reports = edgenode.status.models if edgenode else []
        if edgenode is not None and edgenode.status.heartbeat_time:
            hw = edgenode.status.hardware
        else:
            hw = node_labels.hardware_from_labels(labels, info.allocatable_memory if info else 0)
        first = {e.name: e for e in reversed(entries)}
        own = first.get(key)
        result.append(
            planning.NodeInput(
                name=name,
                labels=labels,
                hardware=hw,
                desired=own,
                reported=next((r for r in reports if r.name == key), None),
                claims=tuple(
                    e for e in entries if e.name != key and (-e.priority, e.name) < (-priority, key)
                ),
                report_problem=node_reports.report_problem(edgenode) or "",
                same_model=tuple(
                    k
                    for k, e in sorted(first.items(), key=lambda kv: entries.index(kv[1]))
                    if own is not None and k != key and e.model == own.model
                ),
            )
        )
    return result


def metadata_labels(edgenode: EdgeNode | None) -> dict[str, str]:
    labels = edgenode.metadata.get("labels") if edgenode else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def entry(name: str, priority: int, memory: int) -> DesiredModel:
    return DesiredModel(
        name=name,
        model="m",
        version="1.0",
        variant="fp32",
        store_url="http://127.0.0.1:1/s",
        priority=priority,
        memory_bytes=memory,
    )


KEYS = [f"ns/d{i}" for i in range(6)]
entries_strategy = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(-2, 2), st.integers(0, GIB)), max_size=6
)


def edgenode(name: str, models: list[tuple[str, int, int]], heartbeat: bool) -> EdgeNode:
    return EdgeNode.model_validate(
        {
            "metadata": {"name": name, "labels": {"edge": "true"}},
            "spec": {
                "models": [
                    entry(k, p, m).model_dump(by_alias=True, exclude_none=True)
                    for k, p, m in models
                ]
            },
            "status": {
                "hardware": hardware("gpu").model_dump(by_alias=True, exclude_none=True),
                "heartbeatTime": "2026-11-21T12:00:00Z" if heartbeat else "",
                "models": [{"name": k, "phase": "Ready"} for k, _, _ in models[:2]],
            },
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    fleet=st.lists(
        st.tuples(st.booleans(), st.booleans(), entries_strategy, st.booleans()),
        min_size=1,
        max_size=6,
    ),
    asks=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-2, 2), st.booleans()), max_size=8),
    replaced=st.sets(st.integers(0, 5)),
)
def test_memoized_inputs_equal_fresh_ones_before_and_after_objects_change(
    fleet: list[tuple[bool, bool, list[tuple[str, int, int]], bool]],
    asks: list[tuple[str, int, bool]],
    replaced: set[int],
) -> None:
    nodes: dict[str, inputs.NodeInfo] = {}
    edgenodes: dict[str, EdgeNode] = {}
    for i, (has_node, has_edgenode, models, heartbeat) in enumerate(fleet):
        name = f"n{i}"
        if has_node:
            nodes[name] = inputs.NodeInfo({"edge": "true", "kubernetes.io/arch": "arm64"}, 4 * GIB)
        if has_edgenode or not has_node:
            edgenodes[name] = edgenode(name, models, heartbeat)
    cache = caching.PlannerCache()
    for key, priority, empty in asks:
        expected = reference(key, priority, empty, nodes, edgenodes)
        assert inputs.node_inputs(key, priority, empty, nodes, edgenodes) == expected
        assert inputs.node_inputs(key, priority, empty, nodes, edgenodes, None, cache) == expected
    for i in replaced:
        name = f"n{i}"
        if name in edgenodes:
            edgenodes[name] = edgenode(name, [("ns/d0", 5, GIB)], True)
    for key, priority, empty in asks:
        expected = reference(key, priority, empty, nodes, edgenodes)
        assert inputs.node_inputs(key, priority, empty, nodes, edgenodes, None, cache) == expected


def test_a_new_edgenode_object_for_a_node_is_seen_at_once() -> None:
    nodes = {"a": inputs.NodeInfo({"edge": "true"}, 4 * GIB)}
    first = {"a": edgenode("a", [("ns/d1", 0, GIB)], True)}
    cache = caching.PlannerCache()
    assert inputs.node_inputs("ns/d1", 0, False, nodes, first, cache=cache)[0].desired is not None
    second = {"a": edgenode("a", [], True)}
    assert inputs.node_inputs("ns/d1", 0, False, nodes, second, cache=cache)[0].desired is None
    assert inputs.node_inputs("ns/d1", 0, True, nodes, {}, cache=cache) == []


@settings(max_examples=60, deadline=None)
@given(
    fleet=st.lists(st.tuples(entries_strategy, st.booleans()), min_size=1, max_size=6),
    asks=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-2, 2)), min_size=1, max_size=6),
    replaced=st.dictionaries(st.integers(0, 5), st.one_of(st.none(), entries_strategy)),
)
def test_new_objects_for_a_node_hand_out_equal_node_inputs_as_the_objects_before(
    fleet: list[tuple[list[tuple[str, int, int]], bool]],
    asks: list[tuple[str, int]],
    replaced: dict[int, list[tuple[str, int, int]] | None],
) -> None:
    """An agent's heartbeat (an equal EdgeNode) or another deployment's entry written gives the
    planner the very NodeInput it had, so what it remembered about the node still applies."""
    nodes = {f"m{i}": inputs.NodeInfo({"edge": "true"}, 4 * GIB) for i in range(len(fleet))}
    edgenodes = {f"m{i}": edgenode(f"m{i}", models, hb) for i, (models, hb) in enumerate(fleet)}
    cache = caching.PlannerCache()
    before = {ask: inputs.node_inputs(*ask, False, nodes, edgenodes, cache=cache) for ask in asks}
    for i, models in replaced.items():
        if i < len(fleet):
            kept, heartbeat = fleet[i]
            edgenodes[f"m{i}"] = edgenode(f"m{i}", kept if models is None else models, heartbeat)
    for (key, priority), had in before.items():
        now = inputs.node_inputs(key, priority, False, nodes, edgenodes, cache=cache)
        assert now == reference(key, priority, False, nodes, edgenodes)
        for old, new in zip(had, now, strict=True):
            assert (old is new) == (old == new)
