"""The agent's pure decisions: windows, metered links, heat, defer, backoff, fit, GC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api import reasons
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import Delivery, Window
from edge_rollout.store.errors import StoreError
from edge_rollout_agent import fetching, policy
from edge_rollout_agent.policy import Failure, Installed, Limits, LocalModel, NodeConditions

NOW = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)  # a Friday
LIMITS = Limits()


def desired(version: str = "1.1", variant: str = "int8", **extra: object) -> DesiredModel:
    return DesiredModel.model_validate(
        {"name": "ns/dep", "model": "m", "version": version, "variant": variant,
         "storeUrl": "file:///s", **extra}
    )  # fmt: skip


def window(start: str, end: str, days: list[str] | None = None, tz: str = "") -> Window:
    return Window.model_validate(
        {"startTime": start, "endTime": end, "days": days or [], "timeZone": tz}
    )


@pytest.mark.parametrize(
    ("win", "when", "tz", "expected"),
    [
        pytest.param(None, NOW, "", True, id="no-window-always-open"),
        pytest.param(window("22:00", "23:30"), NOW, "", True, id="inside"),
        pytest.param(window("01:00", "05:00"), NOW, "", False, id="outside"),
        pytest.param(window("22:00", "02:00", ["Fri"]), NOW, "", True, id="midnight-opening-day"),
        pytest.param(window("22:00", "02:00", ["Fri"]), NOW + timedelta(hours=2), "", True,
                     id="midnight-next-morning"),
        pytest.param(window("22:00", "02:00", ["Fri"]), NOW + timedelta(hours=24), "", False,
                     id="midnight-wrong-day"),
        pytest.param(window("00:00", "01:00"), NOW, "Europe/Berlin", True, id="node-zone"),
        pytest.param(window("00:00", "01:00", tz="UTC"), NOW, "Europe/Berlin", False,
                     id="window-zone-wins"),
        pytest.param(window("08:00", "09:00"), NOW, "Not/AZone", False, id="bad-zone-is-utc"),
    ],
)  # fmt: skip
def test_in_window(win: Window | None, when: datetime, tz: str, expected: bool) -> None:
    assert policy.in_window(win, when, tz) is expected


def test_next_window_check_is_the_opening_minute() -> None:
    opens = policy.next_window_check(window("01:00", "05:00"), NOW, "")
    assert opens == datetime(2026, 3, 7, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "metered_policy", "metered", "expected"),
    [
        pytest.param("Preferred", "Wait", False, "Full", id="unmetered-full"),
        pytest.param("Preferred", "Wait", True, "Wait", id="metered-wait"),
        pytest.param("Preferred", "DeltaOnly", True, "DeltaOnly", id="metered-delta-only"),
        pytest.param("Preferred", "Allow", True, "Full", id="metered-allow"),
        pytest.param("Required", "Allow", False, "DeltaOnly", id="required-never-full"),
        pytest.param("Required", "Allow", True, "DeltaOnly", id="required-metered-allow"),
        pytest.param("Required", "Wait", True, "Wait", id="required-metered-wait"),
        pytest.param("Off", "Allow", True, "Full", id="off-allow"),
        pytest.param("Off", "Wait", True, "Wait", id="off-wait"),
    ],
)
def test_transfer_policy(delta: str, metered_policy: str, metered: bool, expected: str) -> None:
    delivery = Delivery.model_validate({"delta": delta, "metered": metered_policy})
    assert policy.transfer_policy(delivery, metered) == expected


@given(
    delta=st.sampled_from(["Preferred", "Required", "Off"]),
    metered_policy=st.sampled_from(["Wait", "DeltaOnly", "Allow"]),
    metered=st.booleans(),
)
def test_never_a_full_download_when_deltas_are_required(
    delta: str, metered_policy: str, metered: bool
) -> None:
    delivery = Delivery.model_validate({"delta": delta, "metered": metered_policy})
    outcome = policy.transfer_policy(delivery, metered)
    if delta == "Required" or (metered and metered_policy == "DeltaOnly"):
        assert outcome != "Full"
    if metered and metered_policy == "Wait":
        assert outcome == "Wait"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", None, id="empty"),
        pytest.param("2Mi", 2 * 2**20, id="mebi"),
        pytest.param("500k", 500_000, id="kilo"),
        pytest.param("1024", 1024, id="plain"),
        pytest.param("0", None, id="zero-is-no-cap"),
        pytest.param("fast", None, id="garbage"),
    ],
)
def test_parse_bandwidth(text: str, expected: int | None) -> None:
    assert policy.parse_bandwidth(text) == expected


@given(temp=st.floats(min_value=-20, max_value=130), was_hot=st.booleans())
def test_heat_hysteresis(temp: float, was_hot: bool) -> None:
    hot = policy.is_hot(temp, was_hot, LIMITS)
    if temp >= LIMITS.max_celsius:
        assert hot
    if temp < LIMITS.max_celsius - LIMITS.hysteresis_celsius:
        assert not hot
    if not was_hot and temp < LIMITS.max_celsius:
        assert not hot


def test_defer_file_formats() -> None:
    written = NOW - timedelta(minutes=10)
    assert policy.parse_defer("", written) == policy.FOREVER
    assert policy.parse_defer("30m\n", written) == written + timedelta(minutes=30)
    assert policy.parse_defer("2026-03-07T00:00:00Z", written) == datetime(2026, 3, 7, tzinfo=UTC)
    assert policy.parse_defer("later please", written) == policy.FOREVER


def kept(*items: Installed) -> frozenset[Installed]:
    return frozenset(items)


V10, V09, V11 = Installed("1.0", "int8"), Installed("0.9", "int8"), Installed("1.1", "int8")
HOLDING = LocalModel(current=V10, previous=V09, kept=kept(V10, V09))


@pytest.mark.parametrize(
    ("spec", "local", "node", "kind", "reason"),
    [
        pytest.param(desired("1.0"), HOLDING, NodeConditions(), "Keep", "UpToDate",
                     id="up-to-date"),
        pytest.param(desired("0.9"), HOLDING, NodeConditions(metered=True), "Rollback",
                     "OnDisk", id="rollback-from-disk-even-metered"),
        pytest.param(desired("0.9", window={"startTime": "01:00", "endTime": "02:00"}), HOLDING,
                     NodeConditions(), "Rollback", "OnDisk", id="rollback-ignores-window"),
        pytest.param(desired("1.1"), HOLDING, NodeConditions(), "Install", "UpdateAvailable",
                     id="install"),
        pytest.param(desired("1.1"), HOLDING, NodeConditions(deferred_until=policy.FOREVER),
                     "Wait", "Deferred", id="deferred"),
        pytest.param(desired("1.1", window={"startTime": "01:00", "endTime": "02:00"}), HOLDING,
                     NodeConditions(), "Wait", "OutsideWindow", id="outside-window"),
        pytest.param(desired("1.1"), HOLDING, NodeConditions(temperature_celsius=90.0),
                     "Wait", "TooHot", id="too-hot"),
        pytest.param(desired("1.1"), HOLDING, NodeConditions(metered=True), "Wait",
                     "MeteredLink", id="metered-wait"),
        pytest.param(desired("1.1", delivery={"delta": "Required"}), LocalModel(),
                     NodeConditions(), "Wait", "DeltaUnavailable", id="first-install-needs-full"),
        pytest.param(desired("1.1", delivery={"metered": "DeltaOnly"}), HOLDING,
                     NodeConditions(metered=True), "Install", "UpdateAvailable",
                     id="metered-delta-with-basis"),
    ],
)  # fmt: skip
def test_decide(
    spec: DesiredModel, local: LocalModel, node: NodeConditions, kind: str, reason: str
) -> None:
    action = policy.decide(spec, local, node, LIMITS, NOW)
    assert (action.kind, action.reason) == (kind, reason)


def test_metered_delta_only_install_is_marked_delta_only() -> None:
    spec = desired("1.1", delivery={"metered": "DeltaOnly"})
    action = policy.decide(spec, HOLDING, NodeConditions(metered=True), LIMITS, NOW)
    assert action.transfer == "DeltaOnly"


def test_transient_failure_backs_off_then_retries() -> None:
    failure = Failure("1.1", "int8", "StoreUnreachable", attempts=3, at=NOW)
    local = LocalModel(current=V10, kept=kept(V10), failure=failure)
    waiting = policy.decide(desired("1.1"), local, NodeConditions(), LIMITS, NOW)
    assert (waiting.kind, waiting.retry_at) == ("Wait", NOW + timedelta(seconds=40))
    later = policy.decide(desired("1.1"), local, NodeConditions(), LIMITS, NOW + timedelta(60))
    assert later.kind == "Install"


def test_permanent_failure_holds_until_the_spec_changes() -> None:
    failure = Failure("1.1", "int8", "TestVectorMismatch", attempts=1, at=NOW)
    local = LocalModel(current=V10, kept=kept(V10), failure=failure)
    held = policy.decide(desired("1.1"), local, NodeConditions(), LIMITS, NOW + timedelta(1))
    assert (held.kind, held.reason) == ("Hold", "TestVectorMismatch")
    other = policy.decide(desired("1.2"), local, NodeConditions(), LIMITS, NOW)
    assert other.kind == "Install"


def test_a_kept_copy_that_failed_is_not_switched_to_again() -> None:
    # AppUnhealthy put 1.0 back; 1.1 stays on disk, and is not re-activated in a loop
    failed = Installed("1.1", "int8")
    failure = Failure("1.1", "int8", "AppUnhealthy", attempts=1, at=NOW)
    local = LocalModel(current=V10, kept=kept(V10, failed), failure=failure)
    held = policy.decide(desired("1.1"), local, NodeConditions(), LIMITS, NOW + timedelta(1))
    assert (held.kind, held.reason) == ("Hold", "AppUnhealthy")
    rollback = policy.decide(desired("1.0"), local, NodeConditions(), LIMITS, NOW)
    assert rollback.kind == "Keep"
    transient = Failure("1.1", "int8", "StoreUnreachable", attempts=1, at=NOW)
    retried = LocalModel(current=V10, kept=kept(V10, failed), failure=transient)
    waiting = policy.decide(desired("1.1"), retried, NodeConditions(), LIMITS, NOW)
    assert waiting.reason == "Backoff"
    later = policy.decide(desired("1.1"), retried, NodeConditions(), LIMITS, NOW + timedelta(1))
    assert (later.kind, later.reason) == ("Activate", "OnDisk")


@given(attempts=st.integers(min_value=1, max_value=100))
def test_backoff_is_bounded_and_grows(attempts: int) -> None:
    first = Failure("1", "a", "StoreUnreachable", attempts, NOW)
    nxt = Failure("1", "a", "StoreUnreachable", attempts + 1, NOW)
    a, b = policy.retry_at(first, LIMITS), policy.retry_at(nxt, LIMITS)
    assert a is not None
    assert b is not None
    assert NOW < a <= b <= NOW + LIMITS.retry_max


versions = st.builds(Installed, st.sampled_from(["0.8", "0.9", "1.0", "1.1"]),
                     st.sampled_from(["int8", "fp16"]))  # fmt: skip


@given(on_disk=st.frozensets(versions), keep=st.frozensets(versions | st.none()))
def test_garbage_never_includes_what_is_kept(
    on_disk: frozenset[Installed], keep: frozenset[Installed | None]
) -> None:
    garbage = policy.select_garbage(on_disk, keep)
    assert set(garbage) == {item for item in on_disk if item not in keep}
    assert garbage == sorted(garbage)


@pytest.mark.parametrize(
    ("args", "fits"),
    [
        pytest.param((100, 50, 200, 100), True, id="fits"),
        pytest.param((300, 50, 200, 100), False, id="no-disk"),
        pytest.param((300, 50, 200, 100, 150), True, id="fits-after-gc"),
        pytest.param((100, 500, 200, 100), False, id="no-memory"),
    ],
)
def test_check_fit(args: tuple[int, ...], fits: bool) -> None:
    assert (policy.check_fit(*args) is None) is fits


AGENT = Path(policy.__file__).parent
REASON_LITERALS = re.compile(
    r'SyncError\(\s*"(\w+)"|Check\(\s*False,\s*"(\w+)"|return "(\w+)", \(|return "(\w+)"  # reason'
    r'|Action\(\s*"(?:Wait|Hold)",\s*"(\w+)"'
)


def test_every_reason_the_agent_reports_is_in_the_shared_vocabulary() -> None:
    """The planner acts on reasons by their class in api/reasons.py: a reason the agent reports
    must be listed there (else the operator treats it as variant-specific by default)."""
    found = set()
    for source in AGENT.glob("*.py"):
        for match in REASON_LITERALS.finditer(source.read_text()):
            found |= {g for g in match.groups() if g}
    found |= {fetching.classify(e) for e in _store_errors()}
    assert {"LatencyAboveGate", "AgreementBelowGate", "TestVectorMismatch", "LoadFailed"} <= found
    known = reasons.FAILURES | reasons.WAITING
    assert found <= known, sorted(found - known)


def _store_errors() -> list[StoreError]:
    from edge_rollout.store.errors import SHORT_READ, NotFoundError, VerificationError

    return [
        NotFoundError("u", "fetch", "gone", "publish it"),
        StoreError("u", SHORT_READ, "200 with 1 of 2 bytes", "retry"),
        VerificationError("u", "digest", "bad", "fetch again"),
        StoreError("u", "fetch", "refused", "retry"),
    ]
