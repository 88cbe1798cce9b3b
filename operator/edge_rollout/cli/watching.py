"""`status NAME -w` and `status NAME --timeout 5m`: follow a rollout, and exit codes for CI.

`verdict` (pure) says whether a ModelDeployment has settled and with which exit code; `follow`
polls through `fleetview` and prints through `statusview`: a live redraw on a terminal, a new
block only when something changed in a pipe, a one-line summary per change without -w.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from edge_rollout.api.common import parse_duration
from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli import options, statusview
from edge_rollout.cli.fleetview import Cluster

EXIT_READY = 0
EXIT_ERROR = 1
EXIT_FAILED = 3
EXIT_ROLLED_BACK = 4
EXIT_TIMEOUT = 5
EXIT_CODES = (
    "exit codes with --timeout: 0 Ready (every node that should run the target version does); "
    "1 error (not found, forbidden, unreachable, deleted while waiting); 2 bad arguments; "
    "3 Degraded or Failed; 4 RolledBack (aborted, nodes back on the stable version); "
    "5 timeout reached while still Pending, Progressing or Paused"
)
FAILED_PHASES = ("Degraded", "Failed")


@dataclass(frozen=True)
class Verdict:
    code: int
    text: str


def verdict(md: ModelDeployment) -> Verdict | None:
    """The settled outcome of the spec now in the cluster, or None while it is still going (a
    status older than the spec, from before the last edit, is never taken as the outcome)."""
    status = md.status
    if status.observed_generation < int(str(md.metadata.get("generation") or 0)):
        return None
    if status.target_version and status.target_version != md.spec.model.version:
        return None
    counts = f"{status.counts.succeeded}/{status.counts.targeted} nodes on {status.target_version}"
    if status.phase == "Ready":
        return Verdict(EXIT_READY, f"Ready: {counts}")
    if status.phase in FAILED_PHASES:
        return Verdict(EXIT_FAILED, f"{status.phase}: {status.message or counts}")
    if status.phase == "RolledBack":
        why = status.abort_reason or status.message
        return Verdict(EXIT_ROLLED_BACK, f"RolledBack to {status.stable_version}: {why}")
    return None


def summary_line(md: ModelDeployment) -> str:
    """One line per change without -w: phase, step, counts."""
    status, counts = md.status, md.status.counts
    return (
        f"{status.phase or 'Pending'}  {statusview.step_text(md)}  "
        f"{counts.succeeded}/{counts.targeted} succeeded, {counts.failed} failed, "
        f"{counts.pending} pending"
    )


def follow(args: argparse.Namespace, cluster: Cluster, namespace: str) -> int:
    """Poll the deployment every --interval; print each change; with --timeout, return the exit
    code once it settles or the time is up (without, -w runs until Ctrl-C)."""
    timeout = parse_duration(args.timeout) if args.timeout else None
    deadline = None if timeout is None else time.monotonic() + timeout
    last: dict[str, Any] | None = None
    with _drawer(args) as draw:
        while True:
            md = cluster.modeldeployment(namespace, args.name)
            data = statusview.status_data(md)
            if data != last:
                draw(md)
                last = data
            found = verdict(md) if timeout is not None else None
            if found is not None:
                return _done(args, found)
            if deadline is not None and time.monotonic() >= deadline:
                return _done(args, _timed_out(md, args.timeout))
            time.sleep(args.interval)


def _timed_out(md: ModelDeployment, timeout: str) -> Verdict:
    return Verdict(EXIT_TIMEOUT, f"timed out after {timeout}, still {summary_line(md)}")


def _done(args: argparse.Namespace, found: Verdict) -> int:
    print(f"modeldeployment.edgerollout.dev/{args.name}: {found.text}", flush=True)
    return found.code


@contextlib.contextmanager
def _drawer(args: argparse.Namespace) -> Iterator[Callable[[ModelDeployment], None]]:
    if not args.watch:
        yield lambda md: print(f"{_clock()}  {summary_line(md)}", flush=True)
    elif args.output != "table":
        yield lambda md: options.emit(args, lambda: statusview.status_data(md), lambda: "")
    elif options.console().is_terminal:
        with Live(console=options.console(), auto_refresh=False) as live:
            yield lambda md: live.update(_framed(md, args.interval), refresh=True)
    else:
        yield lambda md: _print_block(md)


def _framed(md: ModelDeployment, interval: float) -> RenderableType:
    header = Text(f"Every {interval:g}s, last change {_clock()} (Ctrl-C to stop)", style="dim")
    return Group(header, statusview.status_view(md))


def _print_block(md: ModelDeployment) -> None:
    console = options.console()
    console.print(f"--- {_clock()}")
    console.print(statusview.status_view(md))
    console.file.flush()


def _clock() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
