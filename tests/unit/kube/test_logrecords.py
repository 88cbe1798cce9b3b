"""Log records on one line, as text or JSON, naming their object; API errors without HTTP dumps."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from edge_rollout.kube import logrecords

BODY = {"apiVersion": "edgerollout.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"namespace": "shop", "name": "detector", "uid": "u-1"}}  # fmt: skip
FORBIDDEN = json.dumps({"kind": "Status", "message": 'edgenodes "edge-2" is forbidden: not yours'})


def record(
    msg: object,
    *args: object,
    level: int = logging.INFO,
    error: BaseException | None = None,
    extra: Mapping[str, object] | None = None,
) -> logging.LogRecord:  # fmt: skip
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    made = logging.LogRecord("edge_rollout.test", level, __file__, 1, msg, args, exc_info)
    made.__dict__.update(extra or {})
    return made


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def forbidden() -> ApiException:
    return ApiException(status=403, reason="Forbidden", body=FORBIDDEN)


def test_text_line_names_the_object_and_says_what_happened() -> None:
    line = logrecords.formatter("text", "INFO").format(
        record(
            "event %s %s: %s",
            "Normal",
            "StepStarted",
            "step 1: 10% of nodes",
            extra=logrecords.object_extra(BODY),
        )
    )
    assert line.endswith(
        " INFO    edge_rollout.test ModelDeployment shop/detector: "
        "event Normal StepStarted: step 1: 10% of nodes"
    )
    assert line[:24].endswith("Z")


def test_json_line_parses_and_carries_object_and_message() -> None:
    line = logrecords.formatter("json", "INFO").format(
        record(
            "event %s",
            "Warning RolloutAborted",
            level=logging.WARNING,
            extra=logrecords.object_extra(BODY),
        )
    )
    parsed = json.loads(line)
    assert parsed["object"] == {"kind": "ModelDeployment", "namespace": "shop", "name": "detector"}
    assert parsed["message"] == "event Warning RolloutAborted"
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "edge_rollout.test"
    assert "error" not in parsed


def test_kopf_per_object_records_keep_their_object() -> None:
    """Kopf's per-object logger sets `k8s_ref`; a cluster-scoped object has no namespace."""
    ref = {"apiVersion": "edgerollout.dev/v1alpha1", "kind": "EdgeNode", "name": "edge-1",
           "namespace": None, "uid": "u"}  # fmt: skip
    made = record("Handler 'x' succeeded.", extra={"k8s_ref": ref})
    assert json.loads(logrecords.formatter("json", "INFO").format(made))["object"] == {
        "kind": "EdgeNode",
        "name": "edge-1",
    }
    assert "EdgeNode edge-1: Handler 'x' succeeded." in logrecords.formatter("text", "INFO").format(
        made
    )


def test_a_default_object_names_records_without_one() -> None:
    node = {"kind": "EdgeNode", "name": "edge-7"}
    line = logrecords.formatter("text", "INFO", node).format(record("model m: Ready"))
    assert line.endswith("edge_rollout.test EdgeNode edge-7: model m: Ready")


def test_an_api_error_argument_is_one_line_without_headers() -> None:
    assert "\n" in str(forbidden())  # the client's own text: status, headers, body
    made = record("API server: %s; retrying in %.0fs", forbidden(), 5.0)
    for fmt in logrecords.FORMATS:
        line = logrecords.formatter(fmt, "INFO").format(made)
        assert "\n" not in line
        assert "HTTP response" not in line
    text = logrecords.formatter("text", "INFO").format(made)
    assert text.endswith(
        'API server: 403 Forbidden: edgenodes "edge-2" is forbidden: not yours; retrying in 5s'
    )


def test_an_api_error_kopf_wrote_into_its_message_is_summarised_once() -> None:
    """Kopf logs `... failed with an exception ...: {str(error)}` with the exception attached."""
    error = raised(forbidden())
    made = record(
        f"Handler 'x' failed with an exception. Will retry: {error}",
        level=logging.ERROR,
        error=error,
    )
    text = logrecords.formatter("text", "INFO").format(made)
    assert text.endswith(
        "Handler 'x' failed with an exception. Will retry: 403 Forbidden: "
        'edgenodes "edge-2" is forbidden: not yours'
    )
    parsed = json.loads(logrecords.formatter("json", "INFO").format(made))
    assert parsed["error"] == '403 Forbidden: edgenodes "edge-2" is forbidden: not yours'
    assert "traceback" not in parsed


def test_an_exception_not_in_the_message_is_appended_and_traced_only_at_debug() -> None:
    made = record("plan failed", level=logging.ERROR, error=raised(ValueError("bad\nvalue")))
    assert (
        logrecords.formatter("text", "INFO")
        .format(made)
        .endswith("plan failed (ValueError: bad | value)")
    )
    debug = json.loads(logrecords.formatter("json", "DEBUG").format(made))
    assert debug["traceback"].startswith("Traceback (most recent call last):")
    assert "raise error" in debug["traceback"]
    assert "\n" in logrecords.formatter("text", "DEBUG").format(made)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            forbidden(),
            '403 Forbidden: edgenodes "edge-2" is forbidden: not yours',
            id="status-body",
        ),
        pytest.param(
            ApiException(status=500, reason="Internal Server Error", body="<html>\n"),
            "500 Internal Server Error: <html>",
            id="not-json",
        ),
        pytest.param(ApiException(status=0, reason="timed out"), "0 timed out", id="no-body"),
        pytest.param(OSError("connection refused"), "OSError: connection refused", id="other"),
        pytest.param(KeyError("k"), "KeyError: 'k'", id="key-error"),
    ],
)
def test_error_line(error: BaseException, expected: str) -> None:
    assert logrecords.error_line(error) == expected


@given(st.text())
def test_any_message_is_one_json_line_that_parses(message: str) -> None:
    line = logrecords.formatter("json", "INFO").format(record("%s", message))
    assert "\n" not in line
    assert json.loads(line)["message"] == logrecords.one_line(message)


@pytest.mark.parametrize(("level", "fmt"), [("TRACE", "text"), ("INFO", "yaml")])
def test_unknown_level_or_format_is_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="use one of"):
        logrecords.configure(level, fmt)


def test_configure_sends_the_root_logger_to_stderr_at_the_level() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        handler = logrecords.configure("WARNING", "json")
        assert root.handlers == [handler]
        assert root.level == logging.WARNING
        assert isinstance(handler, logging.StreamHandler)
        assert handler.stream is sys.stderr
        assert isinstance(handler.formatter, logrecords.JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])  # not `root.level = ...`: setLevel clears the loggers' level cache
