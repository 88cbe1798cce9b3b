"""CPU of the pure planner: a full replan of every ModelDeployment over a 10,000-node fleet.

Run: `.venv/bin/python bench/planner/run.py [--nodes N ...] [--deployments D]`.

A full replan is what the operator's timers do for every deployment: `inputs.node_inputs` (the
planner's view of the fleet) then `planning.plan_rollout`, both given the one
`caching.PlannerCache` the operator keeps (`--no-cache`: none, the reference planner). Three
replans are measured in a row:

- **cold**: the first, on objects the planner has never seen (an operator that just started);
- **churn**: after the first plans were written (every changed EdgeNode is a new object, its
  agent reports Downloading) and 10% of the agents heartbeated (new objects too);
- **steady**: again, nothing changed (pauses, waits between agents' reports).

The baseline, measured in the same run, is the least any planner must do: one pass over the
fleet per deployment that matches its selector against each Node's labels and looks the
deployment up in a prebuilt node -> entry index (D x N selector checks and dictionary
look-ups). Prints a Markdown table and a digest of the plans (equal digests = equal decisions,
for checking that an optimisation kept behaviour).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.planner import synthetic
from edge_rollout.core import caching, inputs, labels, planning

HEARTBEAT_SHARE = 0.10


@dataclass
class Clock:
    """CPU seconds of a block, and how much of it the garbage collector took."""

    cpu: float = 0.0
    gc: float = 0.0
    _gc_started: float = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        def on_gc(phase: str, _: dict[str, Any]) -> None:
            if phase == "start":
                self._gc_started = time.process_time()
            else:
                self.gc += time.process_time() - self._gc_started

        gc.callbacks.append(on_gc)
        started = time.process_time()
        try:
            yield
        finally:
            self.cpu += time.process_time() - started
            gc.callbacks.remove(on_gc)


@dataclass
class Replan:
    gather: Clock = field(default_factory=Clock)
    """node_inputs"""
    plan: Clock = field(default_factory=Clock)
    """plan_rollout"""
    plans: list[planning.Plan] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.gather.cpu + self.plan.cpu

    @property
    def gc(self) -> float:
        return self.gather.gc + self.plan.gc


@dataclass(frozen=True)
class Result:
    nodes: int
    deployments: int
    selected: int
    """Sum over deployments of the nodes each selects."""
    baseline: float
    cold: Replan
    churn: Replan
    steady: Replan
    replaced: int
    """EdgeNodes replaced between the cold and the churn replan (writes plus heartbeats)."""
    writes: int
    """EdgeNode entries the cold replan asked to write."""
    digest: str


def baseline(world: synthetic.World, index: dict[str, dict[str, tuple[object, object]]]) -> int:
    """One pass over the fleet per deployment: match the selector, look up the node's entry and
    report for the deployment in a prebuilt index (node -> deployment -> (entry, report))."""
    touched = 0
    for deployment in world.deployments:
        selector = deployment.spec.node_selector
        key = deployment.key
        for name, info in world.nodes.items():
            if labels.selector_matches(selector, info.labels):
                touched += key in index.get(name, {})
    return touched


def entry_index(world: synthetic.World) -> dict[str, dict[str, tuple[object, object]]]:
    """node -> deployment key -> (entry, report), as an operator could keep it (not timed)."""
    index: dict[str, dict[str, tuple[object, object]]] = {}
    for name, edgenode in world.edgenodes.items():
        reports = {m.name: m for m in edgenode.status.models}
        index[name] = {m.name: (m, reports.get(m.name)) for m in edgenode.spec.models}
    return index


def replan(
    world: synthetic.World,
    now: datetime = synthetic.NOW,
    cache: caching.PlannerCache | None = None,
) -> Replan:
    """Every deployment planned once, as the operator does."""
    result = Replan()
    for deployment in world.deployments:
        with result.gather.measure():
            fleet = inputs.node_inputs(
                deployment.key,
                deployment.spec.priority,
                world.selector_empty(deployment),
                world.nodes,
                world.edgenodes,
                deployment.spec.node_selector,
                cache,
            )
        releases = world.releases[deployment.spec.model.name]
        with result.plan.measure():
            plan = planning.plan_rollout(deployment, releases, fleet, now, cache=cache)
        result.plans.append(plan)
    return result


def writes(world: synthetic.World, plans: list[planning.Plan]) -> int:
    """EdgeNode entries that differ from the plans (what the operator would apply)."""
    changed = 0
    for deployment, plan in zip(world.deployments, plans, strict=True):
        for node, entry in plan.desired.items():
            have = world.edgenodes.get(node)
            models = have.spec.models if have else []
            changed += next((m for m in models if m.name == deployment.key), None) != entry
    return changed


def plans_digest(*rounds: list[planning.Plan]) -> str:
    """sha256 over every plan's entries, status and events."""
    h = hashlib.sha256()
    for plans in rounds:
        for plan in plans:
            for node, entry in sorted(plan.desired.items()):
                h.update(node.encode())
                h.update(entry.model_dump_json().encode() if entry else b"-")
            h.update(plan.status.model_dump_json().encode())
            h.update(json.dumps([(e.type, e.reason, e.message) for e in plan.events]).encode())
    return h.hexdigest()[:16]


def cpu(action: Callable[[], object]) -> float:
    gc.collect()
    started = time.process_time()
    action()
    return time.process_time() - started


def measure(node_count: int, deployment_count: int, cached: bool = True) -> Result:
    """The three replans with one PlannerCache (`cached`), or none (the reference)."""
    world = synthetic.build_world(node_count, deployment_count)
    index = entry_index(world)
    base = cpu(lambda: baseline(world, index))
    cache = caching.PlannerCache() if cached else None
    gc.collect()
    cold = replan(world, cache=cache)
    written = writes(world, cold.plans)
    replaced = world.apply(cold.plans) + world.heartbeat(HEARTBEAT_SHARE, seed=1)
    gc.collect()
    churn = replan(world, cache=cache)
    gc.collect()
    steady = replan(world, cache=cache)
    return Result(
        nodes=node_count,
        deployments=deployment_count,
        selected=sum(p.status.counts.targeted for p in cold.plans),
        baseline=base,
        cold=cold,
        churn=churn,
        steady=steady,
        replaced=replaced,
        writes=written,
        digest=plans_digest(cold.plans, churn.plans, steady.plans),
    )


def rollout_digest(node_count: int, deployment_count: int, rounds: int) -> str:
    """Plans over `rounds` minutes of rollouts (agents report, steps advance, some nodes fail),
    as a digest: for checking that an optimisation kept behaviour (not timed)."""
    world = synthetic.build_world(node_count, deployment_count)
    cache = caching.PlannerCache()
    seen = []
    for minute in range(rounds):
        now = synthetic.NOW + timedelta(minutes=minute)
        plans = replan(world, now, cache).plans
        seen.append(plans)
        world.apply(plans)
        world.agents_report(now)
    return plans_digest(*seen)


def table(results: list[Result]) -> str:
    rows = [
        "| nodes | deployments | selected node x deployment pairs | baseline pass (s) "
        "| cold replan (s) | churn replan (s) | steady replan (s) | churn / baseline "
        "| of which GC (cold / churn / steady) | EdgeNodes replaced before churn "
        "| entries written by the cold plan | digest |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r.nodes:,} | {r.deployments} | {r.selected:,} | {r.baseline:.3f} "
            f"| {_split(r.cold)} | {_split(r.churn)} | {_split(r.steady)} "
            f"| {r.churn.cpu / r.baseline:.1f}x "
            f"| {r.cold.gc:.2f} / {r.churn.gc:.2f} / {r.steady.gc:.2f} "
            f"| {r.replaced:,} | {r.writes:,} | `{r.digest}` |"
        )
    return "\n".join(rows)


def _split(replan: Replan) -> str:
    """`total (inputs + planning)`."""
    return f"**{replan.cpu:.3f}** ({replan.gather.cpu:.2f} + {replan.plan.cpu:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, action="append", help="fleet sizes (repeatable)")
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument(
        "--no-cache", action="store_true", help="plan without a PlannerCache (the reference)"
    )
    args = parser.parse_args(argv)
    results = []
    for n in args.nodes or [1_000, 5_000, 10_000]:
        started = time.monotonic()
        results.append(measure(n, args.deployments, cached=not args.no_cache))
        print(f"{n:,} nodes: {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
