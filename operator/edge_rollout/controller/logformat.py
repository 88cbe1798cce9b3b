"""The operator's logs: `--log-level` and `--log-format text|json` applied to Python's and Kopf's
loggers, one line per record naming its object (see `kube.logrecords`).

Kopf's per-object records keep their object; the replan timer's "succeeded" line (every few
seconds per deployment) is DEBUG, not INFO. Setup only: must not decide anything.
"""

from __future__ import annotations

import logging

from edge_rollout.kube import logrecords

QUIET_LOGGERS = ("asyncio", "urllib3", "kubernetes")
"""Libraries whose INFO/DEBUG chatter (HTTP requests, event-loop notes) is shown only at DEBUG."""


class TimerSuccessFilter(logging.Filter):
    """Kopf logs `Timer '<id>' succeeded.` at INFO on every tick: pass it only at DEBUG."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if (
            record.name == "kopf.objects"
            and message.startswith("Timer '")
            and (message.endswith("' succeeded."))
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.debug
        return True


def configure(level: str, fmt: str) -> logging.Handler:
    """Log every record to stderr in `fmt` from `level` up; libraries only warn unless DEBUG."""
    handler = logrecords.configure(level, fmt)
    debug = level == "DEBUG"
    handler.addFilter(TimerSuccessFilter(debug))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    return handler
