"""Prometheus metrics of the agent and its local HTTP endpoint: /metrics, /healthz, /defer.

Listens on 127.0.0.1 by default (apps on the node, and a scraper through the node's own network).
`POST /defer?for=30m` (or `?until=<RFC 3339>`) asks the agent to hold updates; `DELETE /defer`
lifts it. Must not decide anything: it records and serves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from edge_rollout.api.common import parse_duration
from edge_rollout.api.edgenode import Hardware, ModelStatus
from edge_rollout_agent import policy

PHASES = (
    "Pending",
    "Downloading",
    "Verifying",
    "Loading",
    "Testing",
    "Ready",
    "Failed",
    "RolledBack",
)


class Metrics:
    """The agent's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connected = Gauge(
            "edge_rollout_agent_apiserver_connected", "1 while the API server answers", registry=r
        )
        self.heartbeat = Gauge(
            "edge_rollout_agent_last_report_timestamp_seconds",
            "When status was last written",
            registry=r,
        )
        self.bytes_fetched = Counter(
            "edge_rollout_agent_fetched_bytes", "Bytes downloaded from the store", registry=r
        )
        self.bytes_reused = Counter(
            "edge_rollout_agent_reused_bytes",
            "Bytes taken from files already on the node",
            registry=r,
        )
        self.failures = Counter(
            "edge_rollout_agent_failures", "Failed installs by reason", ["reason"], registry=r
        )
        self.actions = Counter(
            "edge_rollout_agent_decisions",
            "Decisions by kind and reason",
            ["kind", "reason"],
            registry=r,
        )
        self.phase = Gauge(
            "edge_rollout_agent_model_phase",
            "1 for the phase a model is in",
            ["model", "phase"],
            registry=r,
        )
        self.latency = Gauge(
            "edge_rollout_agent_model_latency_p95_seconds",
            "Measured p95 latency of the active model",
            ["model"],
            registry=r,
        )
        self.hardware = HardwareCollector()
        r.register(self.hardware)
        self.known: set[str] = set()

    def observe_model(self, status: ModelStatus) -> None:
        self.known.add(status.name)
        for phase in PHASES:
            self.phase.labels(status.name, phase).set(1 if status.phase == phase else 0)
        if status.latency is not None:
            self.latency.labels(status.name).set(status.latency.p95_ms / 1000.0)
        else:
            _remove(self.latency, status.name)

    def keep_models(self, names: Iterable[str]) -> None:
        """Remove the series of every model not in `names` (it left the node's desired list)."""
        kept = set(names)
        for name in self.known - kept:
            for phase in PHASES:
                _remove(self.phase, name, phase)
            _remove(self.latency, name)
        self.known &= kept

    def observe_hardware(self, hardware: Hardware) -> None:
        self.hardware.latest = hardware


class HardwareCollector(Collector):
    """Temperature and available memory from the last discovery: a value the node cannot
    measure (no thermal zone) is absent, not 0."""

    def __init__(self) -> None:
        self.latest: Hardware | None = None

    def collect(self) -> Iterator[Metric]:
        hardware = self.latest
        if hardware is None:
            return
        if hardware.temperature_celsius is not None:
            yield GaugeMetricFamily(
                "edge_rollout_agent_temperature_celsius",
                "Hottest thermal zone",
                value=hardware.temperature_celsius,
            )
        yield GaugeMetricFamily(
            "edge_rollout_agent_memory_available_bytes",
            "Memory available",
            value=hardware.memory_available_bytes,
        )


def _remove(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:  # never set
        return


def parse_defer_request(query: str, now: datetime) -> datetime:
    """Until when a `POST /defer` holds updates: `for=30m`, `until=<RFC 3339>`, or forever."""
    params = parse_qs(query)
    if "for" in params:
        return now + timedelta(seconds=parse_duration(params["for"][0]))
    if "until" in params:
        return policy.parse_defer(params["until"][0], now)
    return policy.FOREVER


class Endpoint:
    """The local HTTP server, run in a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        healthy: Callable[[], bool],
        on_defer: Callable[[datetime | None], None],
        host: str = "127.0.0.1",
        port: int = 9464,
    ) -> None:
        handler = _handler(metrics, healthy, on_defer)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    healthy: Callable[[], bool]
    on_defer: Callable[[datetime | None], None]

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path == "/metrics":
            self._send(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = type(self).healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if url.path != "/defer":
            self._send(404, b"not found\n")
            return
        try:
            until = parse_defer_request(url.query, datetime.now(UTC))
        except ValueError as exc:
            self._send(400, f"{exc}\n".encode())
            return
        type(self).on_defer(until)
        self._send(200, f"deferred until {until.isoformat()}\n".encode())

    def do_DELETE(self) -> None:
        if urlparse(self.path).path != "/defer":
            self._send(404, b"not found\n")
            return
        type(self).on_defer(None)
        self._send(200, b"defer lifted\n")

    def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def _handler(
    metrics: Metrics, healthy: Callable[[], bool], on_defer: Callable[[datetime | None], None]
) -> type[BaseHTTPRequestHandler]:
    return type(
        "Handler",
        (_Handler,),
        {"metrics": metrics, "healthy": staticmethod(healthy), "on_defer": staticmethod(on_defer)},
    )
