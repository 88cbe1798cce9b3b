"""controller/prometheus: one value out of Prometheus's /api/v1/query answer, and failures that
name the address and the fix (served by a real local HTTP server, or a refused port)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edge_rollout.api.analysis import AnalysisRun
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.controller import prometheus


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("body", "value", "error"),
    [
        pytest.param(vector("0.02"), "0.02", "", id="one-series"),
        pytest.param(vector("NaN"), "NaN", "", id="nan-is-judged-by-core"),
        pytest.param({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}},
                     "3", "", id="scalar"),
        pytest.param(vector(), "", "no data: the query matched no series", id="empty"),
        pytest.param(vector("1", "2"), "", "2 series: aggregate them", id="several"),
        pytest.param({"status": "success", "data": {"resultType": "matrix", "result": []}},
                     "", "returned a matrix, not one value", id="range-vector"),
        pytest.param({"status": "error", "errorType": "bad_data", "error": "parse error"},
                     "", "Prometheus refused the query (bad_data: parse error)", id="refused"),
    ],
)  # fmt: skip
def test_one_value_or_why_not(body: dict[str, Any], value: str, error: str) -> None:
    got_value, got_error = prometheus.value_of(body)
    assert got_value == value
    assert error in got_error
    assert bool(got_error) == bool(error)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_prometheus_names_the_address_and_the_field() -> None:
    address = f"http://127.0.0.1:{_free_port()}"
    value, error = prometheus.query(address, "up")
    assert value == ""
    assert f"Prometheus at {address} is unreachable (Connection refused)" in error
    assert "spec.strategy.analysis.prometheus.address" in error


class _NotPrometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def not_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotPrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_not_prometheus_is_named(not_prometheus: str) -> None:
    value, error = prometheus.query(not_prometheus, "up")
    assert value == ""
    assert f"{not_prometheus}/api/v1/query answered HTTP 200 without Prometheus's JSON" in error


def test_an_unreachable_prometheus_is_asked_once_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three due metrics, Prometheus black-holed: one attempt, three inconclusive readings with
    its message, within one query's retries (not three)."""
    address = f"http://127.0.0.1:{_free_port()}"
    metrics = [{"name": f"m{i}", "query": "up", "failureCondition": "result < 1"} for i in range(3)]
    spec = ModelDeploymentSpec.model_validate({
        "model": {"name": "m", "version": "2.0", "store": {"url": "file:///s"}},
        "strategy": {"analysis": {"prometheus": {"address": address}, "metrics": metrics}},
    })  # fmt: skip
    status = ModelDeploymentStatus(
        target_version="2.0", analysis_runs=[AnalysisRun(step=0, version="2.0")]
    )
    asked = []
    real = prometheus.query

    def counted(address: str, promql: str) -> tuple[str, str]:
        asked.append(promql)
        return real(address, promql)

    monkeypatch.setattr(prometheus, "query", counted)  # counts, then asks the real one
    readings = prometheus.measure(spec, status, datetime(2026, 1, 1, tzinfo=UTC))
    assert [r.metric for r in readings] == ["m0", "m1", "m2"]
    assert len(asked) == 1
    assert all(f"Prometheus at {address} is unreachable" in r.error for r in readings)
