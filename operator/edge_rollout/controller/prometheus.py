"""Prometheus instant queries for the analysis a rollout waits for (spec.strategy.analysis).

Thin I/O: GET `<address>/api/v1/query` through the store's requests session (urllib3 `Retry` on
connection errors and 5xx), short timeouts. Every failure becomes a Reading with an error that
names the address and the fix; core/analysis counts it as inconclusive. No judging here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime

import requests

from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.core import analysis
from edge_rollout.store import http as store_http

TIMEOUT = (3.0, 10.0)
"""Connect and read timeouts of one query, in seconds (the replan waits for the answers)."""
ADDRESS_FIELD = "spec.strategy.analysis.prometheus.address"
UNREACHABLE = "is unreachable"


@functools.cache
def _session() -> requests.Session:
    """One pooled session, retrying connects and 5xx as the store reader does."""
    return store_http.build_session(None, retries=2)


def measure(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime
) -> list[analysis.Reading]:
    """Query every metric that is due now (`analysis.due`); [] when no analysis runs. Once
    Prometheus is unreachable, the other metrics of this tick get the same answer unasked (a
    black-holed address would otherwise hold the replan for every metric's timeouts)."""
    run = analysis.running(status)
    metrics = analysis.due(spec, status, now)
    if run is None or not metrics or spec.strategy.analysis is None:
        return []
    address = spec.strategy.analysis.prometheus.address
    readings: list[analysis.Reading] = []
    unreachable = ""
    for metric in metrics:
        value, error = ("", unreachable) if unreachable else query(address, metric.query)
        unreachable = error if UNREACHABLE in error else ""
        readings.append(
            analysis.Reading(step=run.step, metric=metric.name, at=now, value=value, error=error)
        )
    return readings


def query(address: str, promql: str) -> tuple[str, str]:
    """The one value `promql` returns now, as Prometheus wrote it, or ("", why not)."""
    url = address.rstrip("/") + "/api/v1/query"
    try:
        response = _session().get(url, params={"query": promql}, timeout=TIMEOUT)
    except requests.RequestException as error:
        return "", (
            f"Prometheus at {address} {UNREACHABLE} ({_cause(error)}): check {ADDRESS_FIELD}"
            " and that the operator can reach it (from its pod: curl <address>/-/ready)"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return "", (
            f"{url} answered HTTP {response.status_code} without Prometheus's JSON: is"
            f" {ADDRESS_FIELD} the base URL of Prometheus (like http://prometheus:9090)?"
        )
    return value_of(body)


def value_of(body: Mapping[str, object]) -> tuple[str, str]:
    """The single value in a /api/v1/query answer, or ("", why there is none).

    >>> value_of({"status": "success", "data": {"resultType": "vector",
    ...     "result": [{"metric": {}, "value": [1.5, "0.02"]}]}})
    ('0.02', '')
    """
    data = body.get("data")
    if body.get("status") != "success" or not isinstance(data, Mapping):
        error = f"{body.get('errorType', 'error')}: {body.get('error', 'no data in the answer')}"
        return "", f"Prometheus refused the query ({error}): fix the query in the metric"
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return str(result[1]), ""
    if kind != "vector" or not isinstance(result, list):
        return "", f"the query returned a {kind}, not one value: write an instant query"
    if not result:
        return "", "no data: the query matched no series (check metric names and labels)"
    if len(result) > 1:
        return "", f"{len(result)} series: aggregate them into one value with sum() or max()"
    sample = result[0].get("value") if isinstance(result[0], Mapping) else None
    if not isinstance(sample, list) or len(sample) != 2:
        return "", "the answer's sample has no value"
    return str(sample[1]), ""


def _cause(error: requests.RequestException) -> str:
    """The innermost reason of a failed request, e.g. `Connection refused`."""
    text = str(error)
    for known in ("Connection refused", "Name or service not known", "timed out"):
        if known in text:
            return known
    return type(error).__name__
