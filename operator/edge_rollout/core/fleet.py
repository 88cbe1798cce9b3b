"""Fleet bookkeeping for the planner: EdgeNode entries, per-node outcomes and their tally.

Pure. `tally` counts outcomes by state, variant and bytes; `core.summary` turns a tally into the
ModelDeployment status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.release import Release
from edge_rollout.core.values import Choice, Deployment
from edge_rollout.core.values import Event as Event
from edge_rollout.core.values import NodeOutcome as NodeOutcome
from edge_rollout.core.values import NodeState as NodeState

WORST_NODES = 10


def desired_entry(
    deployment: Deployment,
    release: Release,
    choice: Choice,
    *,
    keep: str,
    requested_at: str,
    excluded: Sequence[str],
) -> DesiredModel:
    """A fresh EdgeNode entry asking for `choice` of `release`."""
    assert choice.variant is not None
    variant = release.variant(choice.variant)
    assert variant is not None
    spec = deployment.spec
    return DesiredModel(
        name=deployment.key,
        model=spec.model.name,
        version=release.version,
        variant=variant.name,
        manifest_digest=variant.manifest_digest,
        store_url=spec.model.store.url,
        public_key=spec.model.store.public_key,
        trusted_keys=spec.model.store.trusted_keys,
        priority=spec.priority,
        keep_version=keep if keep != release.version else "",
        window=spec.update_policy.window,
        delivery=spec.update_policy.delivery,
        require_test_vectors=spec.health_gate.require_test_vectors,
        max_latency_ms=spec.health_gate.max_latency_ms,
        min_agreement=spec.health_gate.min_agreement,
        app_check=spec.health_gate.app_check,
        memory_bytes=choice.memory_bytes,
        requested_at=requested_at,
        excluded_variants=list(excluded),
    )


def refresh_entry(deployment: Deployment, desired: DesiredModel) -> DesiredModel:
    """The same version and variant with the policy fields the spec has now."""
    return with_fields(desired, policy_fields(deployment))


def with_fields(desired: DesiredModel, fields: Mapping[str, object]) -> DesiredModel:
    """`desired` with `fields` set; the same object when they already have those values."""
    if tuple(map(getattr, repeat(desired), fields)) == tuple(fields.values()):
        return desired
    return desired.model_copy(update=fields)


def policy_fields(deployment: Deployment) -> dict[str, object]:
    """The fields of every entry that follow the spec as it is now (not the version asked)."""
    spec = deployment.spec
    return {
        "store_url": spec.model.store.url,
        "public_key": spec.model.store.public_key,
        "trusted_keys": spec.model.store.trusted_keys,
        "priority": spec.priority,
        "window": spec.update_policy.window,
        "delivery": spec.update_policy.delivery,
        "require_test_vectors": spec.health_gate.require_test_vectors,
        "max_latency_ms": spec.health_gate.max_latency_ms,
        "min_agreement": spec.health_gate.min_agreement,
        "app_check": spec.health_gate.app_check,
    }


@dataclass(frozen=True)
class Tally:
    """Outcomes counted: by state, and for the target version by variant and bytes. Tallies add
    and subtract, so a plan can count only the nodes whose outcome changed."""

    target: str
    states: Counter[str]
    applied: int
    """Nodes whose entry asks for the target version."""
    variants: Counter[str]
    """Nodes asked for the target, by variant."""
    fetched: int
    reused: int
    bad: tuple[NodeOutcome, ...]
    """Failed and unschedulable nodes."""

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def plus(self, outcomes: Iterable[NodeOutcome]) -> Tally:
        more = tally(outcomes, self.target)
        return Tally(
            self.target,
            self.states + more.states,
            self.applied + more.applied,
            self.variants + more.variants,
            self.fetched + more.fetched,
            self.reused + more.reused,
            (*self.bad, *more.bad),
        )

    def minus(self, outcomes: Iterable[NodeOutcome]) -> Tally:
        """Without `outcomes`, which were counted."""
        less = tally(outcomes, self.target)
        return Tally(
            self.target,
            self.states - less.states,
            self.applied - less.applied,
            self.variants - less.variants,
            self.fetched - less.fetched,
            self.reused - less.reused,
            _without(self.bad, less.bad),
        )


BAD: tuple[NodeState, ...] = ("failed", "unschedulable")


def tally(outcomes: Iterable[NodeOutcome], target: str) -> Tally:
    """The outcomes counted in one pass."""
    states: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    applied = fetched = reused = 0
    bad = []
    for o in outcomes:
        states[o.state] += 1
        desired, reported = o.desired, o.reported
        if desired is not None and desired.version == target:
            applied += 1
            variants[desired.variant] += 1
        if reported is not None and reported.version == target:
            fetched += reported.bytes_fetched
            reused += reported.bytes_reused
        if o.state in BAD:
            bad.append(o)
    return Tally(target, states, applied, variants, fetched, reused, tuple(bad))


def _without(
    bad: tuple[NodeOutcome, ...], gone: tuple[NodeOutcome, ...]
) -> tuple[NodeOutcome, ...]:
    """`bad` less one occurrence of each of `gone` (the same objects)."""
    if not gone:
        return bad
    left = Counter(map(id, gone))
    kept = []
    for o in bad:
        if left[id(o)] > 0:
            left[id(o)] -= 1
        else:
            kept.append(o)
    return tuple(kept)
