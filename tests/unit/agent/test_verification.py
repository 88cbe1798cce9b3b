"""Pure decisions about files already on disk: when to re-verify, what differs, repair, fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api import reasons
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout_agent import policy, verification
from edge_rollout_agent.policy import Failure, Installed, Limits, LocalModel, NodeConditions
from edge_rollout_agent.verification import Stamp

NOW = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)
V1, V2 = Installed("1.0", "int8"), Installed("2.0", "int8")


def desired(version: str = "1.0", **extra: object) -> DesiredModel:
    body = {"name": "ns/dep", "model": "m", "version": version, "variant": "int8"}
    return DesiredModel.model_validate({**body, "storeUrl": "file:///s", **extra})


def test_a_version_never_hashed_is_hashed_in_full() -> None:
    assert verification.check_due(None, False, NOW, SIX_HOURS) == "full"
    assert verification.check_due(NOW, False, NOW, SIX_HOURS) == "full"  # no stamps recorded


@given(st.integers(min_value=0, max_value=48 * 3600))
def test_full_hash_exactly_when_the_interval_has_passed(seconds: int) -> None:
    last = NOW - timedelta(seconds=seconds)
    kind = verification.check_due(last, True, NOW, SIX_HOURS)
    assert kind == ("full" if seconds >= SIX_HOURS.total_seconds() else "stat")


def test_each_difference_is_named() -> None:
    was = Stamp(100, 5, 7)
    assert verification.differences(was, None) == "missing"
    assert verification.differences(was, Stamp(100, 6, 7)) == "mtime changed"
    assert verification.differences(was, Stamp(100, 5, 8)) == "replaced (inode changed)"
    assert verification.differences(was, Stamp(99, 5, 7)) == "size 100 -> 99 bytes"


stamps = st.builds(Stamp, st.integers(0, 10**9), st.integers(0, 10**18), st.integers(0, 10**9))


@given(st.dictionaries(st.sampled_from(["a.onnx", "b.bin", "c"]), stamps, min_size=1))
def test_an_unchanged_directory_has_no_difference_and_a_changed_one_names_its_file(
    recorded: dict[str, Stamp],
) -> None:
    assert verification.first_difference(recorded, dict(recorded)) is None
    victim = sorted(recorded)[-1]
    was = recorded[victim]
    grown = Stamp(was.size + 1, was.mtime_ns, was.inode)
    seen: dict[str, Stamp | None] = {**recorded, victim: grown}
    assert verification.first_difference(recorded, seen) == (
        victim, f"size {was.size} -> {was.size + 1} bytes")  # fmt: skip


def test_a_corrupted_current_is_repaired_not_kept() -> None:
    local = LocalModel(current=V1, kept=frozenset({V1}), corrupted="model.onnx: sha256 x")
    action = policy.decide(desired(), local, NodeConditions(), Limits(), NOW)
    assert (action.kind, action.reason, action.transfer) == ("Install", "Corrupted", "Full")
    intact = policy.decide(desired(), LocalModel(current=V1), NodeConditions(), Limits(), NOW)
    assert intact.kind == "Keep"


def test_a_repair_ignores_the_window_but_not_backoff() -> None:
    closed = {"window": {"startTime": "01:00", "endTime": "02:00"}}
    local = LocalModel(current=V1, kept=frozenset({V1}), corrupted="damaged")
    assert policy.decide(desired("1.0", **closed), local, NodeConditions(), Limits(), NOW).kind == (
        "Install")  # fmt: skip
    failed = Failure("1.0", "int8", "Corrupted", 1, NOW)
    held = LocalModel(current=V1, kept=frozenset({V1}), corrupted="damaged", failure=failed)
    action = policy.decide(desired(), held, NodeConditions(), Limits(), NOW)
    assert (action.kind, action.reason) == ("Wait", "Backoff")


def test_corrupted_and_disk_full_are_transient_never_permanent() -> None:
    for reason in ("Corrupted", "DiskFull"):
        assert reasons.failure_scope(reason) == "transient"
        assert reason not in policy.PERMANENT_REASONS
        assert policy.retry_at(Failure("1", "v", reason, 3, NOW), Limits()) is not None


def test_disk_short_is_disk_full_with_numbers_larger_than_the_disk_does_not_fit() -> None:
    disk = policy.DiskSpace("/var/lib/edge-rollout", total=10_000, free=1_000, reclaimable=500)
    assert policy.judge_fit(1_500, 1, disk, 10) is None  # reclaimable counts
    reason, message = policy.judge_fit(1_501, 1, disk, 10) or ("", "")
    assert reason == "DiskFull"
    assert "needed 1501 bytes, free 1000 (+500 reclaimable) on /var/lib/edge-rollout" in message
    assert (policy.judge_fit(10_001, 1, disk, 10) or ("",))[0] == "DoesNotFit"
    assert (policy.judge_fit(1, 11, disk, 10) or ("",))[0] == "DoesNotFit"


@given(st.frozensets(st.sampled_from([Installed(f"{v}.0", "int8") for v in range(1, 6)])))
def test_reclaimable_never_holds_what_serves_the_target_or_keep_version(
    on_disk: frozenset[Installed],
) -> None:
    current, target = Installed("3.0", "int8"), Installed("5.0", "int8")
    spare = policy.reclaimable(on_disk, current, "1.0", target)
    assert all(item.version != "1.0" for item in spare)
    assert current not in spare
    assert target not in spare
    assert set(spare) == on_disk - {current, target, Installed("1.0", "int8")}
