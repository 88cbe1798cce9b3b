"""Variant selection: which variant of a release a node should run, and why not the others.

Pure: filter, then score. Every rejected candidate gets a `Rejection` with a CamelCase reason and
a sentence; the chosen one gets the reason it won. Memory is shared by all models on a node, so
`memory_budget` subtracts what higher-priority deployments already claimed there.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_rollout.api.edgenode import DesiredModel, Hardware
from edge_rollout.api.modeldeployment import SelectionPolicy
from edge_rollout.api.release import Release, VariantEntry
from edge_rollout.core import labels as node_labels
from edge_rollout.core.values import Choice as Choice
from edge_rollout.core.values import NodeFacts as NodeFacts
from edge_rollout.core.values import Rejection as Rejection

CLASS_RANK = {"npu": 0, "gpu": 1, "cpu": 2}
"""Accelerated variants first when the node has the accelerator."""
GIB = 1 << 30


def memory_budget(
    hardware: Hardware, policy: SelectionPolicy, claims: Iterable[DesiredModel]
) -> int | None:
    """Bytes this deployment may use on the node; None when the node's memory is unknown (not
    reported). A node reporting 0 bytes has 0: nothing fits.

    `claims` are the entries of deployments that take precedence on this node.

    >>> memory_budget(Hardware(memory_bytes=4 * GIB), SelectionPolicy(), []) == int(3.6 * GIB)
    True
    """
    if hardware.memory_bytes is None:
        return None
    usable = hardware.memory_bytes * (100 - policy.memory_headroom_percent) // 100
    return max(0, usable - sum(c.memory_bytes for c in claims))


def select_variant(
    node: NodeFacts,
    release: Release,
    policy: SelectionPolicy,
    budget: int | None,
    excluded: Iterable[str] = (),
) -> Choice:
    """The best variant of `release` for `node` under `policy`, within `budget` bytes of memory.

    Worked example: a node with a Hailo NPU and 2 GiB, a release with `int8-npu` (needs the NPU
    provider), `fp16` (needs CUDA) and `fp32` (1.5 GiB peak) and `int8` (0.4 GiB): `fp16` is
    rejected with NoExecutionProvider, `fp32` with DoesNotFit when the budget is 1 GiB, and
    `int8-npu` beats `int8` because the node has the accelerator it was built for.
    """
    candidates = sorted(release.variants, key=lambda v: v.name)
    pinned = _pinned_variant(node, policy)
    rejections: list[Rejection] = []
    fitting: list[VariantEntry] = []
    for variant in candidates:
        rejection = _reject(variant, node, policy, budget, set(excluded), pinned)
        if rejection is None:
            fitting.append(variant)
        else:
            rejections.append(rejection)
    if not fitting:
        reason, message = _none_fits(release, policy, pinned, rejections)
        return Choice(node.name, None, reason, message, tuple(rejections))
    ranked = sorted(fitting, key=lambda v: _score(v, node.hardware, policy))
    best, *rest = ranked
    rejections.extend(Rejection(v.name, "Outranked", _outranked(v, best, policy)) for v in rest)
    return Choice(
        node=node.name,
        variant=best.name,
        reason="Pinned" if pinned else "BestScore",
        message=_chosen_message(best, node.hardware, policy, pinned is not None),
        rejections=tuple(sorted(rejections, key=lambda r: r.variant)),
        memory_bytes=required_memory(best),
    )


def profile_key(
    node: NodeFacts, policy: SelectionPolicy, budget: int | None, excluded: Iterable[str]
) -> tuple[object, ...]:
    """Everything `select_variant` reads about a node: nodes with equal keys get equal choices
    (fleets are made of few hardware profiles, so planners memoize on this)."""
    hw = node.hardware
    accelerators = tuple(
        sorted((a.accelerator_class, a.execution_provider) for a in hw.accelerators)
    )
    return (
        hw.arch,
        tuple(sorted(hw.cpu_features)),
        tuple(sorted(hw.execution_providers)),
        accelerators,
        hw.disk_free_bytes,
        budget,
        _pinned_variant(node, policy),
        tuple(sorted(excluded)),
    )


def required_memory(variant: VariantEntry) -> int:
    """Memory a node must have free for the variant (declared minimum or measured peak)."""
    return max(variant.requirements.min_memory_bytes, variant.measurements.peak_memory_bytes)


def _pinned_variant(node: NodeFacts, policy: SelectionPolicy) -> str | None:
    for pin in policy.pins:
        if node_labels.selector_matches(pin.node_selector, node.labels):
            return pin.variant
    return None


def _reject(
    variant: VariantEntry,
    node: NodeFacts,
    policy: SelectionPolicy,
    budget: int | None,
    excluded: set[str],
    pinned: str | None,
) -> Rejection | None:
    for check in (_check_policy, _check_hardware):
        found = check(variant, node, policy)
        if found:
            return Rejection(variant.name, *found)
    if pinned is not None and variant.name != pinned:
        return Rejection(variant.name, "NotPinned", f"node is pinned to variant {pinned}")
    if variant.name in excluded:
        return Rejection(
            variant.name,
            "FailedOnNode",
            "this variant failed to load or pass its test vectors on this node",
        )
    needed = required_memory(variant)
    if budget is not None and needed > budget:
        if node.hardware.memory_bytes == 0:
            reported = "the node reports 0 bytes of memory (hardware.memoryBytes)"
            return Rejection(variant.name, "DoesNotFit", f"needs {_mib(needed)}; {reported}")
        return Rejection(
            variant.name,
            "DoesNotFit",
            f"needs {_mib(needed)} of memory, {_mib(budget)} is left for this model",
        )
    if 0 < node.hardware.disk_free_bytes < variant.measurements.file_bytes:
        return Rejection(
            variant.name,
            "DiskTooSmall",
            f"needs {_mib(variant.measurements.file_bytes)} of disk, "
            f"{_mib(node.hardware.disk_free_bytes)} free",
        )
    return None


def _check_policy(
    variant: VariantEntry, node: NodeFacts, policy: SelectionPolicy
) -> tuple[str, str] | None:
    if policy.allowed_variants and variant.name not in policy.allowed_variants:
        return "NotAllowed", "not in spec.selection.allowedVariants"
    if variant.precision not in policy.allowed_precisions:
        return "PrecisionNotAllowed", f"{variant.precision} is not in allowedPrecisions"
    unknown = variant.measurements.not_measured
    if unknown and policy.min_agreement > 0:
        return (
            "NotMeasured",
            f"its agreement with fp32 was not measured ({unknown}); minAgreement needs it",
        )
    agreement = _agreement(variant)
    if agreement < policy.min_agreement:
        return (
            "LowAgreement",
            f"agreement with fp32 is {agreement:.4f}, below minAgreement {policy.min_agreement}",
        )
    return None


def _check_hardware(
    variant: VariantEntry, node: NodeFacts, policy: SelectionPolicy
) -> tuple[str, str] | None:
    needs = variant.requirements
    hardware = node.hardware
    if needs.arch and hardware.arch and hardware.arch not in needs.arch:
        return "ArchMismatch", f"built for {', '.join(needs.arch)}, node is {hardware.arch}"
    providers = _node_providers(hardware)
    if not set(needs.execution_providers) & providers:
        return (
            "NoExecutionProvider",
            f"needs one of {', '.join(needs.execution_providers)}; node has "
            f"{', '.join(sorted(providers))}",
        )
    missing = sorted(set(needs.cpu_features) - set(hardware.cpu_features))
    if missing and hardware.cpu_features:
        return "MissingCpuFeatures", f"node lacks {', '.join(missing)}"
    return None


def _node_providers(hardware: Hardware) -> set[str]:
    found = {a.execution_provider for a in hardware.accelerators if a.execution_provider}
    return set(hardware.execution_providers) | found | {"CPUExecutionProvider"}


def _agreement(variant: VariantEntry) -> float:
    agreement = variant.measurements.agreement
    return agreement.top1 if agreement.top1 is not None else agreement.cosine


def _score(
    variant: VariantEntry, hardware: Hardware, policy: SelectionPolicy
) -> tuple[int, float, float, str]:
    """Lower is better: accelerator match first, then the policy's measure, then the name."""
    classes = {a.accelerator_class for a in hardware.accelerators}
    wanted = variant.requirements.accelerator_class
    accelerated = CLASS_RANK[wanted] if wanted in classes or wanted == "cpu" else 3
    m = variant.measurements
    if m.not_measured:  # no figures to compare: after every measured variant of its class
        return accelerated, float("inf"), float("inf"), variant.name
    key = {
        "quality": (-_agreement(variant), m.latency_p50_ms),
        "latency": (m.latency_p50_ms, -_agreement(variant)),
        "size": (float(required_memory(variant)), float(m.file_bytes)),
    }[policy.prefer]
    return accelerated, key[0], key[1], variant.name


def _outranked(loser: VariantEntry, winner: VariantEntry, policy: SelectionPolicy) -> str:
    return f"fits, but {winner.name} ranks higher (prefer {policy.prefer}{_facts(loser)})"


def _chosen_message(
    best: VariantEntry, hardware: Hardware, policy: SelectionPolicy, pinned: bool
) -> str:
    if pinned:
        return f"{best.name} is pinned for this node by spec.selection.pins"
    target = best.requirements.accelerator_class
    on = f" on the node's {target.upper()}" if target != "cpu" else ""
    return f"{best.name}{on} ranks best for prefer={policy.prefer}{_facts(best)}"


def _facts(variant: VariantEntry) -> str:
    m = variant.measurements
    if m.not_measured:
        return f"; {variant.name}: not measured ({m.not_measured})"
    return (
        f"; {variant.name}: agreement {_agreement(variant):.4f}, p50 {m.latency_p50_ms:.2f} ms,"
        f" {_mib(required_memory(variant))}"
    )


def _none_fits(
    release: Release, policy: SelectionPolicy, pinned: str | None, rejections: list[Rejection]
) -> tuple[str, str]:
    """Why nothing fits: a pin or allowedVariants naming variants the release lacks is a
    mistake in the spec, said as such (every variant is then rejected NotPinned or NotAllowed,
    which alone would not say what to fix); otherwise the rejections' reasons.
    """
    names = sorted(v.name for v in release.variants)
    has = f"it has {', '.join(names)}" if names else "it has no variants"
    if pinned is not None and pinned not in names:
        return (
            "PinnedVariantNotInRelease",
            f"spec.selection.pins pins this node to variant {pinned}, which release"
            f" {release.model}@{release.version} does not have ({has}): set the pin's variant to"
            " one of those or remove the pin",
        )
    allowed = sorted(set(policy.allowed_variants))
    if allowed and not set(allowed) & set(names):
        return (
            "AllowedVariantsNotInRelease",
            f"spec.selection.allowedVariants ({', '.join(allowed)}) names no variant of release"
            f" {release.model}@{release.version} ({has}): list variants it has, or remove"
            " allowedVariants to allow them all",
        )
    reasons = sorted({r.reason for r in rejections})
    return (
        "NoVariantFits",
        f"no variant fits this node ({', '.join(reasons)}); see the reasons per variant",
    )


def _mib(value: int) -> str:
    return f"{value / (1 << 20):.0f} MiB"
