"""The local endpoint's request parsing and the metrics it exports (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from edge_rollout.api.edgenode import Hardware, LatencySummary, ModelStatus
from edge_rollout_agent import metrics, policy

GIB = 1 << 30
NOW = datetime(2026, 3, 6, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("for=30m", NOW + timedelta(minutes=30), id="for"),
        pytest.param("until=2026-03-07T00:00:00Z", datetime(2026, 3, 7, tzinfo=UTC), id="until"),
        pytest.param("", policy.FOREVER, id="until-lifted"),
    ],
)
def test_defer_requests(query: str, expected: datetime) -> None:
    assert metrics.parse_defer_request(query, NOW) == expected


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        metrics.parse_defer_request("for=soon", NOW)


def test_model_phase_and_latency_are_exported() -> None:
    m = metrics.Metrics()
    m.observe_model(ModelStatus(name="ns/dep", phase="Ready",
                                latency=LatencySummary(p50_ms=1.0, p95_ms=2.0)))  # fmt: skip
    text = generate_latest(m.registry).decode()
    assert 'edge_rollout_agent_model_phase{model="ns/dep",phase="Ready"} 1.0' in text
    assert 'edge_rollout_agent_model_latency_p95_seconds{model="ns/dep"} 0.002' in text


def test_a_model_that_left_the_node_has_no_series() -> None:
    m = metrics.Metrics()
    m.observe_model(ModelStatus(name="ns/gone", phase="Ready",
                                latency=LatencySummary(p50_ms=1.0, p95_ms=2.0)))  # fmt: skip
    m.observe_model(ModelStatus(name="ns/kept", phase="Loading"))
    m.keep_models(["ns/kept"])
    text = generate_latest(m.registry).decode()
    assert "ns/gone" not in text
    assert 'edge_rollout_agent_model_phase{model="ns/kept",phase="Loading"} 1.0' in text


def test_an_unknown_temperature_is_absent_not_zero() -> None:
    m = metrics.Metrics()
    m.observe_hardware(Hardware(memory_bytes=GIB, memory_available_bytes=GIB // 2))
    text = generate_latest(m.registry).decode()
    assert "edge_rollout_agent_temperature_celsius" not in text
    assert "edge_rollout_agent_memory_available_bytes 5.36870912e+08" in text
    m.observe_hardware(
        Hardware(memory_bytes=GIB, memory_available_bytes=GIB, temperature_celsius=61.5)
    )
    assert "edge_rollout_agent_temperature_celsius 61.5" in generate_latest(m.registry).decode()
