"""The random chaos schedule: which fault, on which node, after how long, drawn from one seed.

A pure function of its arguments (no clock, no I/O), so `--seed N` replays exactly the same
faults, targets and delays; bench/chaos/moments.py carries the schedule out on a real fleet.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass

FAULTS = (
    "operator-kill",
    "agent-kill",
    "deployment-recreate",
    "relabel",
    "edgenode-delete",
    "active-flip",
    "kept-rot-rollback",
    "store-short",
    "store-down",
    "disk-full",
    "clock-skew",
    "abort",
)
"""The faults of issue 14, one name each."""
ROLLOUT = "rollout"
CHECKPOINT = "checkpoint"
HELD = frozenset({"relabel", "store-short", "store-down", "disk-full", "clock-skew", "abort"})
"""Faults that last `hold` seconds (the abort: seconds into the rollout it stops)."""
TARGETED = frozenset(
    {"agent-kill", "relabel", "edgenode-delete", "active-flip", "kept-rot-rollback", "clock-skew"}
)
SKEWS = (-40 * 60, 5 * 60, 24 * 3600)
"""Clock offsets of a skewed agent: 40 minutes behind, 5 minutes and a day ahead."""
ROLLOUT_CHANCE = 0.4
"""Chance that a rollout to a random version starts before a fault (so faults land mid-rollout)."""


@dataclass(frozen=True)
class Event:
    """One step of the run: wait `delay` seconds, then do `kind`."""

    index: int
    kind: str
    delay: float
    target: int = -1
    """Index of the node it hits (-1: none, or the one node with a small disk for disk-full)."""
    hold: float = 0.0
    version: int = -1
    """Index into the published versions (rollout, abort)."""
    flag: bool = False
    """active-flip: keep the file's mtime (only a full hash finds it)."""
    skew: int = 0
    """clock-skew: seconds the agent's clock runs off."""

    def describe(self, nodes: list[str], versions: list[str]) -> str:
        parts = [f"#{self.index} {self.kind}", f"after {self.delay:.2f} s"]
        if self.target >= 0:
            parts.append(f"node={nodes[self.target]}")
        if self.version >= 0:
            parts.append(f"version={versions[self.version]}")
        if self.kind in HELD:
            parts.append(f"hold={self.hold:.2f} s")
        if self.kind == "active-flip":
            parts.append("mtime kept" if self.flag else "mtime changed")
        if self.skew:
            parts.append(f"skew={self.skew:+d} s")
        return " ".join(parts)


def make_schedule(
    seed: int,
    faults: int,
    nodes: int,
    versions: int,
    kinds: tuple[str, ...] = FAULTS,
    per_checkpoint: int = 10,
) -> list[Event]:
    """`faults` faults drawn from `kinds`, rollouts between them, a checkpoint (heal everything,
    let the fleet settle, check consistency) after every `per_checkpoint` faults and at the end."""
    if faults < 1 or nodes < 1 or versions < 2 or not kinds or per_checkpoint < 1:
        raise ValueError("need faults >= 1, nodes >= 1, versions >= 2, kinds, per_checkpoint >= 1")
    unknown = sorted(set(kinds) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULTS)}")
    rng = random.Random(seed)
    events: list[Event] = []
    for number in range(1, faults + 1):
        if rng.random() < ROLLOUT_CHANCE:
            events.append(Event(len(events), ROLLOUT, _delay(rng), version=rng.randrange(versions)))
        events.append(_fault(rng, len(events), rng.choice(kinds), nodes, versions))
        if number % per_checkpoint == 0 or number == faults:
            events.append(Event(len(events), CHECKPOINT, 0.0))
    return events


def _delay(rng: random.Random) -> float:
    return round(rng.uniform(0.2, 3.0), 2)


def _fault(rng: random.Random, index: int, kind: str, nodes: int, versions: int) -> Event:
    delay = _delay(rng)
    target = rng.randrange(nodes) if kind in TARGETED else -1
    hold = round(rng.uniform(0.5, 3.0) if kind == "abort" else rng.uniform(1.0, 8.0), 2)
    return Event(
        index,
        kind,
        delay,
        target=target,
        hold=hold if kind in HELD else 0.0,
        version=rng.randrange(versions) if kind == "abort" else -1,
        flag=rng.random() < 0.5 if kind == "active-flip" else False,
        skew=rng.choice(SKEWS) if kind == "clock-skew" else 0,
    )


def fingerprint(events: list[Event]) -> str:
    """A short digest of the whole schedule: two runs with the same one did the same things."""
    text = json.dumps([asdict(e) for e in events], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fault_count(events: list[Event]) -> int:
    return sum(e.kind in FAULTS for e in events)
