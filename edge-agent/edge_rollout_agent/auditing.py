"""Served files stay verified: every kept version of a model is checked against its manifest,
cheaply (size and mtime stamps) every step and in full (sha256) when due or after a restart.

Disk I/O only; when to hash is verification.check_due, what changed is first_difference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from edge_rollout.api.manifest import Manifest
from edge_rollout_agent import layout, verification
from edge_rollout_agent.layout import IntegrityError, ModelDir
from edge_rollout_agent.policy import Installed

log = logging.getLogger(__name__)


class Auditor:
    """What each kept version's files looked like when their sha256 last matched, and when."""

    def __init__(self, clock: Callable[[], datetime], interval: timedelta) -> None:
        self.clock = clock
        self.interval = interval
        self.stamps: dict[tuple[str, Installed], dict[str, verification.Stamp]] = {}
        self.hashed_at: dict[tuple[str, Installed], datetime] = {}

    def damaged_current(self, model_dir: ModelDir) -> str:
        """Check every kept version; delete kept versions that rotted and return why `current`
        no longer matches its manifest ("" when it does)."""
        current = model_dir.link("current")
        damaged = ""
        for manifest, item in list(model_dir.iter_installed()):
            problem = self.problem(model_dir, manifest, item)
            if problem and item == current:
                damaged = problem
            elif problem:
                log.warning("%s: kept version %s is Corrupted (%s); deleted, fetched again if "
                            "needed", model_dir.name, layout.dir_name(item), problem)  # fmt: skip
                model_dir.remove(item)
        return damaged

    def problem(self, model_dir: ModelDir, manifest: Manifest, item: Installed) -> str:
        """Why one version no longer matches its manifest, or "" (and its stamps recorded)."""
        key = (model_dir.name, item)
        recorded = self.stamps.get(key)
        kind = verification.check_due(
            self.hashed_at.get(key), recorded is not None, self.clock(), self.interval
        )
        changed = None
        if kind == "stat" and recorded is not None:
            seen = layout.stamps(model_dir.path(item), manifest)
            changed = verification.first_difference(recorded, seen)
            if changed is None:
                return ""
        try:
            layout.verify_files(model_dir.path(item), manifest)
        except IntegrityError as exc:
            self.stamps.pop(key, None)
            self.hashed_at.pop(key, None)
            return f"{exc}" + (f" ({changed[0]}: {changed[1]})" if changed else "")
        self.record(model_dir, item)
        return ""

    def record(self, model_dir: ModelDir, item: Installed) -> None:
        """Remember a version just verified in full (its stamps and when)."""
        manifest = model_dir.manifest(item)
        if manifest is None:
            return
        seen = layout.stamps(model_dir.path(item), manifest)
        self.stamps[(model_dir.name, item)] = {k: v for k, v in seen.items() if v is not None}
        self.hashed_at[(model_dir.name, item)] = self.clock()

    def shift(self, jump: timedelta) -> None:
        """The wall clock jumped: full checks stay due after the same elapsed time."""
        self.hashed_at = {k: at + jump for k, at in self.hashed_at.items()}
