"""Log records of the operator and the agent, one line each, as text or JSON, naming their object.

The object comes from Kopf's per-object logger (the record's `k8s_ref`), from `object_extra(body)`,
or from the formatter's default (the agent's EdgeNode). A Kubernetes API error renders as
`403 Forbidden: <the apiserver's message>`, never as the client's multi-line dump with headers.
Formatting only: this module must not log, post or decide anything.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
REF = "k8s_ref"
"""The record attribute Kopf's per-object logger sets (apiVersion, kind, namespace, name, uid)."""
Ref = Mapping[str, Any]


def object_extra(body: Mapping[str, Any]) -> dict[str, Ref]:
    """`extra=` for a log call about `body`, in the shape Kopf's per-object logger gives."""
    meta = body.get("metadata") or {}
    fields = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    return {REF: fields}


def object_label(ref: Ref) -> str:
    """`ModelDeployment default/demo`, `EdgeNode edge-1`: kind, then namespace/name."""
    name = ref.get("name") or ""
    if ref.get("namespace"):
        name = f"{ref['namespace']}/{name}"
    return " ".join(str(part) for part in (ref.get("kind"), name) if part)


def one_line(text: str) -> str:
    """`text` with its lines joined by ` | ` (blank lines dropped)."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def api_status_message(error: BaseException) -> str:
    """The `message` of the JSON Status body a Kubernetes API error carries; "" when none."""
    body = getattr(error, "body", None)
    if not isinstance(body, str | bytes) or not body:
        return ""
    try:
        loaded = json.loads(body)
    except ValueError:
        return ""
    return str(loaded.get("message") or "") if isinstance(loaded, dict) else ""


def api_error_line(error: BaseException) -> str | None:
    """`404 Not Found: edgenodes.edgerollout.dev "x" not found` for a Kubernetes API error (an
    exception with an int `status`, a `reason` and a JSON Status `body`); None for others."""
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if not isinstance(status, int) or not isinstance(reason, str):
        return None
    body = getattr(error, "body", None)
    message = api_status_message(error) or one_line(str(body or ""))[:300]
    return f"{status} {reason}: {message}" if message else f"{status} {reason}"


def error_line(error: BaseException) -> str:
    """One line for any exception: the API summary, else `Type: message`."""
    return api_error_line(error) or f"{type(error).__name__}: {one_line(str(error)) or repr(error)}"


def message_of(record: logging.LogRecord) -> str:
    """The record's message on one line; API errors among its arguments or embedded from its
    exception (Kopf writes `str(error)` into the message) become their one-line summary."""
    args = record.args
    if isinstance(args, tuple):
        args = tuple(_summary(a) for a in args)
    text = str(_summary(record.msg))
    if args:
        text = text % args
    error = _exception(record)
    summary = api_error_line(error) if error is not None else None
    if error is not None and summary and str(error):
        text = text.replace(str(error), summary)
    return one_line(text)


def _summary(value: object) -> object:
    if isinstance(value, BaseException):
        return api_error_line(value) or value
    return value


def _exception(record: logging.LogRecord) -> BaseException | None:
    return record.exc_info[1] if record.exc_info else None


class RecordFormatter(logging.Formatter):
    """Base of both formats: the parts of a record, each on one line."""

    def __init__(self, tracebacks: bool = False, default_object: Ref | None = None) -> None:
        super().__init__()
        self.tracebacks = tracebacks
        self.default_object = dict(default_object or {})

    def parts(self, record: logging.LogRecord) -> dict[str, Any]:
        ref = getattr(record, REF, None) or self.default_object
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        parts: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "object": {k: v for k, v in ref.items() if k in ("kind", "namespace", "name") and v},
            "message": message_of(record),
        }
        error = _exception(record)
        if error is not None:
            parts["error"] = error_line(error)
            if self.tracebacks and record.exc_info:
                parts["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return parts


class TextFormatter(RecordFormatter):
    """`2026-12-06T11:30:00.123Z INFO  kopf.objects ModelDeployment default/demo: message`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = self.parts(record)
        label = object_label(parts["object"])
        line = f"{parts['time']} {record.levelname:<7} {parts['logger']} "
        line += f"{label}: {parts['message']}" if label else parts["message"]
        if "error" in parts and not _said(line, record):
            line += f" ({parts['error']})"
        return line + (f"\n{parts['traceback']}" if "traceback" in parts else "")


def _said(line: str, record: logging.LogRecord) -> bool:
    """Whether the line already carries the record's error (Kopf puts `str(error)` in it)."""
    error = _exception(record)
    said = (api_error_line(error) or one_line(str(error))) if error is not None else ""
    return bool(said) and said in line


class JsonFormatter(RecordFormatter):
    """One JSON object a line: time, level, logger, object {kind, namespace, name}, message,
    and error (plus traceback at DEBUG) when the record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        parts = self.parts(record)
        if not parts["object"]:
            del parts["object"]
        return json.dumps(parts, default=str)


def formatter(fmt: str, level: str, default_object: Ref | None = None) -> RecordFormatter:
    """The formatter for `--log-format`; tracebacks are kept only at DEBUG."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    kind = JsonFormatter if fmt == "json" else TextFormatter
    return kind(tracebacks=level == "DEBUG", default_object=default_object)


def configure(level: str, fmt: str, default_object: Ref | None = None) -> logging.Handler:
    """Send every log record (root logger) to stderr in `fmt` at `level`; return the handler."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, level, default_object))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
