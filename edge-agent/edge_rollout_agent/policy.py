"""Pure decisions of the agent: what to do next for one desired model, given local state.

Update window (in the node's zone), metered-link and delta policy, thermal back-pressure,
node-side defer, retry backoff, fit checks and garbage collection. Everything is an argument,
`now` included; nothing here reads the clock, the disk or the network, and nothing logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_rollout.api import reasons
from edge_rollout.api.common import parse_duration
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import Delivery, Window

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PERMANENT_REASONS = reasons.PERMANENT
"""Failures that the same input will hit again (variant-specific and release-wide ones): no
retry until the spec entry changes."""

Transfer = Literal["Full", "DeltaOnly"]
ActionKind = Literal["Keep", "Activate", "Rollback", "Install", "Wait", "Hold"]


@dataclass(frozen=True, order=True)
class Installed:
    """A complete, verified model file on disk: one version and variant of one model."""

    version: str
    variant: str


@dataclass(frozen=True)
class Failure:
    """The last failed attempt at one version/variant of a model."""

    version: str
    variant: str
    reason: str
    attempts: int
    at: datetime


@dataclass(frozen=True)
class LocalModel:
    """What the node holds for one desired model."""

    current: Installed | None = None
    previous: Installed | None = None
    kept: frozenset[Installed] = frozenset()
    failure: Failure | None = None
    corrupted: str = ""
    """Why `current` no longer matches its manifest ("" when it does, or was not checked)."""


@dataclass(frozen=True)
class NodeConditions:
    """The node's situation now, as observed by the agent."""

    time_zone: str = ""
    metered: bool = False
    temperature_celsius: float | None = None
    hot: bool = False
    """The agent is already holding back for heat (hysteresis)."""
    deferred_until: datetime | None = None
    """A local app asked for "not now" until then (datetime.max: until it says otherwise)."""


@dataclass(frozen=True)
class Limits:
    """Agent settings behind the decisions."""

    max_celsius: float = 85.0
    hysteresis_celsius: float = 5.0
    retry_base: timedelta = timedelta(seconds=10)
    retry_max: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class Action:
    """What to do next for one model, and why (a CamelCase reason and a sentence)."""

    kind: ActionKind
    reason: str
    message: str = ""
    target: Installed | None = None
    transfer: Transfer | None = None
    retry_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())


# --- window -----------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; UTC when empty or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(window: Window | None, now: datetime, node_zone: str) -> bool:
    """Whether `now` (aware) falls in the window, read in the window's zone or else the node's.

    A window that ends before it starts spans midnight and belongs to the day it opened:
    days=[Fri], 22:00-02:00 is open Friday 23:00 and Saturday 01:00, not Saturday 23:00.
    """
    if window is None:
        return True
    local = now.astimezone(zone(window.time_zone or node_zone))
    start, end, t = _minutes(window.start_time), _minutes(window.end_time), local.hour * 60
    t += local.minute
    today, yesterday = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
    days: set[str] = set(window.days) or set(DAYS)
    if start < end:
        return today in days and start <= t < end
    return (t >= start and today in days) or (t < end and yesterday in days)


def next_window_check(window: Window | None, now: datetime, node_zone: str) -> datetime:
    """When to look again: the next minute boundary at which the window may open (<= 8 days)."""
    probe = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(8 * 24 * 60):
        if in_window(window, probe, node_zone):
            return probe
        probe += timedelta(minutes=1)
    return probe


def outside_window(
    window: Window | None, now: datetime, node_zone: str, target: Installed | None = None
) -> Action | None:
    """Wait/OutsideWindow saying when the window opens again, or None when `now` is in it."""
    if in_window(window, now, node_zone):
        return None
    when = next_window_check(window, now, node_zone)
    return Action("Wait", "OutsideWindow", f"update window opens at {when.isoformat()}",
                  target, retry_at=when)  # fmt: skip


def pause_install(action: Action, window: Window | None, now: datetime, node_zone: str) -> (
    Action | None
):  # fmt: skip
    """Checked between chunks and right before `current` switches: the Wait that stops an
    install started by `action` once its window has closed, or None to go on. A repair of a
    Corrupted served file goes on outside the window."""
    if action.reason == "Corrupted":
        return None
    return outside_window(window, now, node_zone, action.target)


# --- network, heat, defer ---------------------------------------------------------------------

_RATE = re.compile(r"^([0-9]+)(k|Ki|M|Mi|G|Gi)?$")
_UNITS = {None: 1, "k": 10**3, "Ki": 2**10, "M": 10**6, "Mi": 2**20, "G": 10**9, "Gi": 2**30}


def parse_bandwidth(text: str) -> int | None:
    """Bytes per second from `maxBandwidth` (`2Mi`, `500k`); None means no cap."""
    match = _RATE.match(text.strip())
    if not text.strip() or not match:
        return None
    rate = int(match.group(1)) * _UNITS[match.group(2)]
    return rate or None


def transfer_policy(delivery: Delivery, metered: bool) -> Transfer | Literal["Wait"]:
    """How bytes may come: a Full download, DeltaOnly (only against a version the node
    holds), or Wait. Never a full download when delta is Required or a metered link says
    DeltaOnly."""
    if metered and delivery.metered == "Wait":
        return "Wait"
    if delivery.delta == "Required":
        return "DeltaOnly"
    if metered and delivery.metered == "DeltaOnly":
        return "DeltaOnly" if delivery.delta != "Off" else "Wait"
    return "Full"


def is_hot(temperature: float | None, was_hot: bool, limits: Limits) -> bool:
    """Thermal back-pressure with hysteresis: hot above max, cool again below max - hysteresis."""
    if temperature is None:
        return False
    if was_hot:
        return temperature >= limits.max_celsius - limits.hysteresis_celsius
    return temperature >= limits.max_celsius


def is_deferred(deferred_until: datetime | None, now: datetime) -> bool:
    """A local app asked the agent to hold off and the time has not passed."""
    return deferred_until is not None and now < deferred_until


def retry_at(failure: Failure, limits: Limits) -> datetime | None:
    """When a failed attempt may be tried again: exponential backoff; None for permanent ones."""
    if failure.reason in PERMANENT_REASONS:
        return None
    delay: timedelta = limits.retry_base * (2 ** min(failure.attempts - 1, 16))
    return failure.at + min(delay, limits.retry_max)


# --- the decision -----------------------------------------------------------------------------


def decide(
    desired: DesiredModel, local: LocalModel, node: NodeConditions, limits: Limits, now: datetime
) -> Action:
    """What to do next for one desired model.

    Example: current 1.0/int8, previous 0.9/int8 on disk, spec asks 0.9/int8 -> Rollback
    from disk at once (no download, window and metered link do not apply); spec asks 1.1/int8
    at 03:00 with window 01:00-05:00 on an unmetered link -> Install with Full transfer.
    """
    target = Installed(desired.version, desired.variant)
    if local.current == target and local.corrupted:
        return _decide_repair(desired, local, node, limits, now, target)
    if local.current == target:
        return Action("Keep", "UpToDate", target=target)
    if is_deferred(node.deferred_until, now):
        return Action("Wait", "Deferred", "a local app asked to defer updates", target)
    if target in local.kept:
        return _decide_on_disk(desired, local, node, limits, now, target)
    return _decide_install(desired, local, node, limits, now, target)


def _decide_on_disk(
    desired: DesiredModel,
    local: LocalModel,
    node: NodeConditions,
    limits: Limits,
    now: datetime,
    target: Installed,
) -> Action:
    """The target is kept on disk: switch to it, unless that very copy failed (held or in
    backoff like a download would be: AppUnhealthy or a failed load must not loop)."""
    held = _held_by_failure(local.failure, target, limits, now)
    if held is not None:
        return held
    kind: ActionKind = "Rollback" if _is_rollback(desired, local, target) else "Activate"
    closed = outside_window(desired.window, now, node.time_zone, target)
    if kind == "Activate" and closed is not None:
        return closed  # a verified version staged on disk waits for its window
    return Action(kind, "OnDisk", "the version is kept on disk: no download", target)


def _is_rollback(desired: DesiredModel, local: LocalModel, target: Installed) -> bool:
    return target == local.previous or desired.version == desired.keep_version


def _decide_install(
    desired: DesiredModel,
    local: LocalModel,
    node: NodeConditions,
    limits: Limits,
    now: datetime,
    target: Installed,
) -> Action:
    held = _held_by_failure(local.failure, target, limits, now)
    if held is not None:
        return held
    closed = outside_window(desired.window, now, node.time_zone, target)
    if closed is not None:
        return closed
    if is_hot(node.temperature_celsius, node.hot, limits):
        return Action("Wait", "TooHot", f"SoC at {node.temperature_celsius} °C (limit "
                      f"{limits.max_celsius} °C)", target)  # fmt: skip
    return _decide_transfer(desired, local, node, target)


def _decide_repair(
    desired: DesiredModel,
    local: LocalModel,
    node: NodeConditions,
    limits: Limits,
    now: datetime,
    target: Installed,
) -> Action:
    """The served file is damaged: fetch what is damaged again at once (the window does not
    hold a repair back, backoff and the metered-link policy do)."""
    held = _held_by_failure(local.failure, target, limits, now)
    if held is not None:
        return held
    action = _decide_transfer(desired, local, node, target)
    if action.kind != "Install":
        return action
    return Action("Install", "Corrupted", local.corrupted, target, transfer=action.transfer)


def _held_by_failure(
    failure: Failure | None, target: Installed, limits: Limits, now: datetime
) -> Action | None:
    if failure is None or (failure.version, failure.variant) != (target.version, target.variant):
        return None
    when = retry_at(failure, limits)
    if when is None:
        return Action("Hold", failure.reason, "failed; change the spec entry to try again", target)
    if now < when:
        return Action("Wait", "Backoff", f"retrying after {failure.reason}", target, retry_at=when)
    return None


def _decide_transfer(
    desired: DesiredModel, local: LocalModel, node: NodeConditions, target: Installed
) -> Action:
    policy = transfer_policy(desired.delivery, node.metered)
    if policy == "Wait":
        return Action("Wait", "MeteredLink", "link is metered and policy says Wait", target)
    if policy == "DeltaOnly" and not local.kept:
        return Action("Wait", "DeltaUnavailable", "only deltas are allowed and the node holds "
                      "no earlier version of this model to apply them to", target)  # fmt: skip
    return Action("Install", "UpdateAvailable", target=target, transfer=policy)


# --- fit and garbage collection ---------------------------------------------------------------


def check_fit(
    file_bytes: int, memory_bytes: int, disk_free: int, memory_available: int, reclaimable: int = 0
) -> str | None:
    """Why a model does not fit (disk counts what garbage collection frees), or None."""
    if file_bytes > disk_free + reclaimable:
        return f"needs {file_bytes} bytes of disk, {disk_free + reclaimable} free"
    if memory_bytes > memory_available:
        return f"needs {memory_bytes} bytes of memory, {memory_available} available"
    return None


def judge_fit(
    need_disk: int, need_memory: int, disk: DiskSpace, memory_available: int
) -> tuple[str, str] | None:
    """Why a model cannot be installed now, as (reason, message), or None.

    Disk short but the file system large enough: `DiskFull`, transient (space may come back);
    larger than the whole file system, or not enough memory: `DoesNotFit` (this variant).

    >>> judge_fit(300, 1, DiskSpace("/d", total=1000, free=100, reclaimable=50), 10)[0]
    'DiskFull'
    >>> judge_fit(3000, 1, DiskSpace("/d", total=1000, free=100), 10)[0]
    'DoesNotFit'
    """
    if need_disk > disk.total:
        return "DoesNotFit", (f"needs {need_disk} bytes of disk, more than the {disk.total} "
                              f"bytes of the file system of {disk.path}")  # fmt: skip
    if need_disk > disk.free + disk.reclaimable:
        return "DiskFull", (f"needed {need_disk} bytes, free {disk.free} (+{disk.reclaimable} "
                            f"reclaimable) on {disk.path}; free space there, the agent retries "
                            "on its own")  # fmt: skip
    if need_memory > memory_available:
        return "DoesNotFit", f"needs {need_memory} bytes of memory, {memory_available} available"
    return None


@dataclass(frozen=True)
class DiskSpace:
    """The data directory's file system, measured after the agent removed its own leftovers."""

    path: str
    total: int
    free: int
    reclaimable: int = 0
    """Bytes of kept versions that no rollback needs (deleted before downloading if needed)."""


def reclaimable(
    on_disk: frozenset[Installed], current: Installed | None, keep_version: str, target: Installed
) -> list[Installed]:
    """Kept versions an install may delete first: not the one serving (it becomes `previous`),
    not keepVersion (the operator's rollback target), not the target itself."""
    keep = {current, target} | {item for item in on_disk if item.version == keep_version}
    return sorted(item for item in on_disk if item not in keep)


def select_garbage(
    on_disk: frozenset[Installed], keep: frozenset[Installed | None]
) -> list[Installed]:
    """Model directories to delete: everything not current, previous, keepVersion or in flight,
    in a stable order."""
    return sorted(item for item in on_disk if item not in keep)


# --- node-side defer --------------------------------------------------------------------------

FOREVER = datetime.max.replace(tzinfo=ZoneInfo("UTC"))


def parse_defer(text: str, written: datetime) -> datetime:
    """Until when the defer file holds updates back: empty means until it is removed, an
    RFC 3339 time means until then, a duration (`30m`) means that long after it was written."""
    text = text.strip()
    if not text:
        return FOREVER
    try:
        return written + timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        until = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return FOREVER  # unreadable: the app meant "not now"; err on the side of waiting
    return until if until.tzinfo else until.replace(tzinfo=ZoneInfo("UTC"))


# --- the health gate --------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What a new version must prove on the node before it goes active (spec.healthGate)."""

    max_latency_ms: float | None = None
    min_agreement: float = 1.0

    @classmethod
    def of(cls, desired: DesiredModel) -> Gate:
        return cls(desired.max_latency_ms, desired.min_agreement)


@dataclass(frozen=True)
class Measured:
    """What the smoke test measured: p95 latency, and how many golden vectors agreed."""

    p95_ms: float
    agreed: int = 0
    cases: int = 0
    first_mismatch: str = ""


def judge_health(gate: Gate, measured: Measured) -> tuple[str, str] | None:
    """Why the new version fails the gate (a reason and a message naming the measured value, the
    limit and the field), or None when it passes.

    >>> judge_health(Gate(max_latency_ms=0.001), Measured(p95_ms=28.0))[0]
    'LatencyAboveGate'
    >>> judge_health(Gate(min_agreement=0.5), Measured(1.0, agreed=1, cases=2)) is None
    True
    """
    agreement = _judge_agreement(gate, measured)
    if agreement is not None:
        return agreement
    limit = gate.max_latency_ms
    if limit is not None and measured.p95_ms > limit:
        return "LatencyAboveGate", (
            f"p95 latency {measured.p95_ms:.3f} ms on this node is above the limit {limit:g} ms"
            " of spec.healthGate.maxLatencyMs; the operator tries a faster variant, or raise the"
            " limit"
        )
    return None


def _judge_agreement(gate: Gate, measured: Measured) -> tuple[str, str] | None:
    """None of the golden vectors agrees: the release or its vectors are wrong (every variant
    fails them); some but too few agree: this variant is off (another may pass)."""
    needed = gate.min_agreement * measured.cases - 1e-9  # 0.7 * 10 is 7.000000000000001
    if measured.cases == 0 or measured.agreed >= needed:
        return None
    share = measured.agreed / measured.cases
    first = f" (first mismatch: {measured.first_mismatch})" if measured.first_mismatch else ""
    if measured.agreed == 0:
        return "TestVectorMismatch", (
            f"none of the {measured.cases} golden test vectors agrees{first}: the release or its"
            " vectors are wrong, so no other variant of it is tried; publish a fixed version"
        )
    return "AgreementBelowGate", (
        f"agreement {share:.3f} ({measured.agreed} of {measured.cases} golden test vectors) is"
        f" below spec.healthGate.minAgreement {gate.min_agreement:g}{first}; the operator tries"
        " the next variant, or lower the limit"
    )
