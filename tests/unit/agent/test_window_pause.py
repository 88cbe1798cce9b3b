"""Update windows enforced to the end (issue 14.6): pure pause decisions and real installs.

A window that closes mid-download stops it at the next chunk boundary, `current` never switches
outside the window, what is staged is reused once it opens again; repairs go on regardless.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import Window
from edge_rollout_agent import policy, sync
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.policy import Action, Installed, LocalModel, NodeConditions

from .storefixture import ScratchStore
from .test_sync import CountingSource, build, env

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
         "America/St_Johns", "Pacific/Chatham", "Australia/Lord_Howe"]  # fmt: skip
TARGET = Installed("2.0", "fp32")
INSTALL = Action("Install", "UpdateAvailable", target=TARGET, transfer="Full")
REPAIR = Action("Install", "Corrupted", "model.onnx: sha256 differs", TARGET, transfer="Full")
minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def window(start: int, end: int, tz: str = "") -> Window:
    return Window.model_validate({"startTime": hhmm(start), "endTime": hhmm(end), "timeZone": tz})


@given(start=minutes, end=minutes, tz=st.sampled_from(ZONES), node_tz=st.sampled_from(ZONES),
       now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                        timezones=st.just(UTC)))  # fmt: skip
def test_an_install_pauses_exactly_when_the_window_is_closed(
    start: int, end: int, tz: str, node_tz: str, now: datetime
) -> None:
    win = window(start, end, tz)
    paused = policy.pause_install(INSTALL, win, now, node_tz)
    assert (paused is None) is policy.in_window(win, now, node_tz)
    if paused is not None:
        assert (paused.kind, paused.reason, paused.target) == ("Wait", "OutsideWindow", TARGET)
        assert paused.retry_at is not None
        assert paused.retry_at > now
        assert policy.in_window(win, paused.retry_at, node_tz)
        assert paused.retry_at.isoformat() in paused.message


@given(start=minutes, end=minutes, tz=st.sampled_from(ZONES),
       now=st.datetimes(timezones=st.just(UTC)))  # fmt: skip
def test_a_repair_of_a_corrupted_file_never_pauses(
    start: int, end: int, tz: str, now: datetime
) -> None:
    assert policy.pause_install(REPAIR, window(start, end, tz), now, "") is None


@given(start=minutes, length=st.integers(min_value=1, max_value=23 * 60),
       tz=st.sampled_from(ZONES), day=st.dates(date(2021, 1, 1), date(2034, 1, 1)),
       before=st.integers(min_value=1, max_value=59))  # fmt: skip
def test_the_moment_the_window_closes_the_next_chunk_boundary_pauses(
    start: int, length: int, tz: str, day: date, before: int
) -> None:
    end = (start + length) % (24 * 60)
    zone = ZoneInfo(tz)
    opened = datetime.combine(day, time(start // 60, start % 60), zone)
    closes = opened + timedelta(minutes=length)  # wall-clock arithmetic in the window's zone
    for moment in (opened, closes):  # skip local times that a DST change skips or repeats
        assume(moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
               == moment.replace(tzinfo=None))  # fmt: skip
        assume(moment.replace(fold=1).utcoffset() == moment.utcoffset())
    assume((closes.hour * 60 + closes.minute) == end)
    assume(closes.astimezone(UTC) - opened.astimezone(UTC) == timedelta(minutes=length))
    win = window(start, end, tz)
    last_open = closes.astimezone(UTC) - timedelta(seconds=before)
    assert policy.pause_install(INSTALL, win, last_open, "") is None
    paused = policy.pause_install(INSTALL, win, closes.astimezone(UTC), "")
    assert paused is not None
    assert paused.reason == "OutsideWindow"
    assert paused.retry_at is not None
    assert paused.retry_at.astimezone(zone).strftime("%H:%M") == hhmm(start)


def desired_model(version: str = "2.0") -> DesiredModel:
    """An entry whose window (01:00-02:00 UTC) is closed at noon."""
    return DesiredModel.model_validate(
        {"name": "ns/dep", "model": "m", "version": version, "variant": "fp32",
         "storeUrl": "file:///s", **CLOSED}
    )  # fmt: skip


CLOSED: dict[str, object] = {
    "window": {"startTime": "01:00", "endTime": "02:00", "timeZone": "UTC"}
}
AT_NOON = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)


def test_a_verified_version_on_disk_waits_for_the_window_to_activate() -> None:
    local = LocalModel(current=Installed("1.0", "fp32"), kept=frozenset({TARGET}))
    action = policy.decide(desired_model(), local, NodeConditions(), policy.Limits(),
                           AT_NOON)  # fmt: skip
    assert (action.kind, action.reason) == ("Wait", "OutsideWindow")
    assert action.retry_at == datetime(2026, 3, 7, 1, 0, tzinfo=UTC)
    opened = policy.decide(desired_model(), local, NodeConditions(), policy.Limits(),
                           datetime(2026, 3, 7, 1, 0, tzinfo=UTC))  # fmt: skip
    assert opened.kind == "Activate"


def test_a_rollback_to_the_previous_version_is_not_held_by_the_window() -> None:
    local = LocalModel(current=Installed("2.0", "fp32"), previous=Installed("1.0", "fp32"),
                       kept=frozenset({Installed("1.0", "fp32"), TARGET}))  # fmt: skip
    action = policy.decide(desired_model("1.0"), local, NodeConditions(),
                           policy.Limits(), AT_NOON)  # fmt: skip
    assert action.kind == "Rollback"


class Closes:
    """A window that closes after `open_calls` checks (the checks an install makes)."""

    def __init__(self, open_calls: int) -> None:
        self.left = open_calls
        self.calls = 0

    def __call__(self) -> Action | None:
        self.calls += 1
        self.left -= 1
        return (
            None
            if self.left >= 0
            else policy.outside_window(
                Window.model_validate({"startTime": "01:00", "endTime": "02:00"}), AT_NOON, ""
            )
        )


def test_a_window_closing_mid_download_stops_at_a_chunk_then_resumes_from_staging(
    tmp_path: Path,
) -> None:
    store = ScratchStore(tmp_path / "store")
    data, golden = build(tmp_path, 1)
    manifest = store.publish(data, "2.0", golden=golden)
    spec = DesiredModel.model_validate(store.desired(manifest))
    chunks = len(manifest.files[0].chunks)
    assert chunks >= 3
    first = CountingSource(store.reader())
    with pytest.raises(sync.PausedError) as info:
        sync.install(spec, env(tmp_path, first, concurrency=1, pause=Closes(2)), runs=1)
    assert info.value.action.reason == "OutsideWindow"
    assert len(first.fetched) == 2  # the two chunks before the window closed, no more
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    assert model_dir.link("current") is None
    assert model_dir.installed() == frozenset()
    again = CountingSource(store.reader())
    result = sync.install(spec, env(tmp_path, again, concurrency=1), runs=1)
    assert not set(again.fetched) & set(first.fetched)  # the staged chunks are reused
    assert result.bytes_reused >= sum(c.size for c in manifest.files[0].chunks[:2])
    assert model_dir.link("current") == Installed("2.0", "fp32")


def test_a_window_closing_after_the_download_keeps_current_until_it_opens(
    tmp_path: Path,
) -> None:
    store = ScratchStore(tmp_path / "store")
    old, _ = build(tmp_path, 1)
    new, golden = build(tmp_path, 2)
    m1, m2 = store.publish(old, "1.0"), store.publish(new, "2.0", golden=golden)
    sync.install(DesiredModel.model_validate(store.desired(m1)),
                 env(tmp_path, store.reader()), runs=1)  # fmt: skip
    spec = DesiredModel.model_validate(store.desired(m2))
    counting = CountingSource(store.reader())
    holder: dict[str, sync.Environment] = {}

    def closed_once_tested() -> Action | None:
        tested = holder["env"].progress.phase == "Testing"
        return policy.outside_window(CLOSED_WINDOW, AT_NOON, "") if tested else None

    holder["env"] = env(tmp_path, counting, pause=closed_once_tested)
    with pytest.raises(sync.PausedError):
        sync.install(spec, holder["env"], runs=1)
    model_dir = ModelDir(tmp_path / "data", "ns/dep")
    assert model_dir.link("current") == Installed("1.0", "fp32")
    assert Installed("2.0", "fp32") not in model_dir.installed()
    fetched = len(counting.fetched)
    assert fetched > 0
    result = sync.install(spec, env(tmp_path, counting), runs=1)
    assert len(counting.fetched) == fetched  # all from staging: nothing downloaded again
    assert result.bytes_fetched == 0
    assert model_dir.link("current") == Installed("2.0", "fp32")


CLOSED_WINDOW = Window.model_validate({"startTime": "01:00", "endTime": "02:00"})
