"""The application's health on a new version (healthGate.appCheck): an HTTP GET or a command.

`attempt_offsets` is the pure schedule; `run_check` probes the application until it is healthy
or the timeout passes and returns what it last answered, for the AppUnhealthy message.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import AppCheck
from edge_rollout_agent.layout import IntegrityError, ModelDir
from edge_rollout_agent.policy import Installed

ANSWER_CHARS = 200


@dataclass(frozen=True)
class Verdict:
    """Whether the application became healthy, after how many attempts, and its last answer."""

    healthy: bool
    attempts: int
    answer: str


def attempt_offsets(check: AppCheck) -> list[float]:
    """Seconds after the switch at which attempts start: every periodSeconds while before
    timeoutSeconds (at least one).

    >>> attempt_offsets(AppCheck.model_validate(
    ...     {"exec": {"command": ["true"]}, "timeoutSeconds": 5, "periodSeconds": 2}))
    [0.0, 2.0, 4.0]
    """
    count = max(1, -(-check.timeout_seconds // check.period_seconds))
    return [float(i * check.period_seconds) for i in range(count)]


def describe(check: AppCheck) -> str:
    """The check in words, for messages: `GET <url>` or `command [argv]`."""
    if check.http_get is not None:
        return f"GET {check.http_get.url}"
    assert check.exec is not None
    return f"command {check.exec.command}"


def probe_once(check: AppCheck, timeout: float) -> tuple[bool, str]:
    """One attempt: (healthy, what the application answered)."""
    if check.http_get is not None:
        return _get(check.http_get.url, timeout)
    assert check.exec is not None
    return _run(check.exec.command, timeout)


def run_check(
    check: AppCheck,
    probe: Callable[[AppCheck, float], tuple[bool, str]] = probe_once,
    ticks: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Probe on the schedule until one attempt is healthy or the attempts run out."""
    start = ticks()
    answer = "no attempt"
    offsets = attempt_offsets(check)
    for number, offset in enumerate(offsets, start=1):
        sleep(max(0.0, start + offset - ticks()))
        left = start + check.timeout_seconds - ticks()
        healthy, answer = probe(check, max(0.1, min(float(check.period_seconds), left)))
        if healthy:
            return Verdict(True, number, answer)
    return Verdict(False, len(offsets), answer)


def check_app(entry: DesiredModel, model_dir: ModelDir) -> tuple[Installed | None, str] | None:
    """Check the application on the version just made current; None when healthy, else
    `previous` made current again and (what `current` now serves, the AppUnhealthy message)."""
    if entry.app_check is None:
        return None
    verdict = run_check(entry.app_check)
    if verdict.healthy:
        return None
    restored, back = switch_back(model_dir)
    check = entry.app_check
    return restored, (
        f"{entry.name}: the application was not healthy on {entry.version}/{entry.variant}"
        f" within spec.healthGate.appCheck.timeoutSeconds={check.timeout_seconds}:"
        f" {describe(check)} answered {verdict.answer!r} (attempt {verdict.attempts}); {back}"
    )


def switch_back(model_dir: ModelDir) -> tuple[Installed | None, str]:
    """Make `previous` current again and delete the refused version (it will not be served
    again, policy holds it by its failure: free its space): (what `current` serves now, what
    happened in words)."""
    current, previous = model_dir.link("current"), model_dir.link("previous")
    if current is None or previous is None or previous == current:
        return current, "no previous version on the node to switch back to; current kept"
    try:
        model_dir.activate(previous)
    except IntegrityError as exc:
        return current, f"switching back to {previous.version} failed: {exc}"
    model_dir.remove(current)
    (model_dir.base / "previous").unlink(missing_ok=True)
    return previous, (
        f"switched back to {previous.version}/{previous.variant} and deleted"
        f" {current.version}/{current.variant} from the node"
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: object) -> None:
        return None


def _get(url: str, timeout: float) -> tuple[bool, str]:
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            body = answer.read(ANSWER_CHARS).decode(errors="replace")
            return 200 <= answer.status < 300, f"HTTP {answer.status} {body}".strip()
    except urllib.error.HTTPError as exc:
        body = exc.read(ANSWER_CHARS).decode(errors="replace")
        return False, f"HTTP {exc.code} {body}".strip()
    except (OSError, ValueError) as exc:
        return False, f"no answer: {getattr(exc, 'reason', exc)}"


def _run(command: list[str], timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(  # argv from the deployment, no shell
            command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return False, f"no exit within {timeout:.1f} s"
    except OSError as exc:
        return False, f"cannot run: {exc}"
    output = (done.stdout + done.stderr).decode(errors="replace").strip()[-ANSWER_CHARS:]
    return done.returncode == 0, f"exit {done.returncode} {output}".strip()
