"""Pure decisions about re-verifying model files already on disk: what to check when, and what
differs from what the agent recorded when it last verified them.

A cheap stat (size, mtime, inode) every heartbeat; the full sha256 at start, every verify
interval, and whenever a stat differs. Nothing here reads the disk or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

CheckKind = Literal["stat", "full"]


@dataclass(frozen=True)
class Stamp:
    """What a file looked like when its sha256 last matched its manifest."""

    size: int
    mtime_ns: int
    inode: int


def check_due(
    last_full: datetime | None, recorded: bool, now: datetime, interval: timedelta
) -> CheckKind:
    """Which check a version needs now: `full` when it was never hashed (at start, after an
    install the agent did not record), when the interval has passed, else `stat`.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> check_due(None, False, t, timedelta(hours=6)), check_due(t, True, t, timedelta(hours=6))
    ('full', 'stat')
    """
    if last_full is None or not recorded or now - last_full >= interval:
        return "full"
    return "stat"


def differences(recorded: Stamp, seen: Stamp | None) -> str | None:
    """What changed in a file since it was verified (None: nothing a stat can see).

    >>> differences(Stamp(10, 5, 1), Stamp(10, 5, 1)) is None
    True
    >>> differences(Stamp(10, 5, 1), Stamp(9, 6, 1))
    'size 10 -> 9 bytes, mtime changed'
    """
    if seen is None:
        return "missing"
    found = []
    if seen.size != recorded.size:
        found.append(f"size {recorded.size} -> {seen.size} bytes")
    if seen.mtime_ns != recorded.mtime_ns:
        found.append("mtime changed")
    if seen.inode != recorded.inode:
        found.append("replaced (inode changed)")
    return ", ".join(found) or None


def first_difference(
    recorded: dict[str, Stamp], seen: dict[str, Stamp | None]
) -> tuple[str, str] | None:
    """The first file (in name order) whose stat differs from the record, and how."""
    for path in sorted(recorded):
        found = differences(recorded[path], seen.get(path))
        if found is not None:
            return path, found
    return None
