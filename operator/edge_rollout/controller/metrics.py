"""Prometheus metrics of the operator (served by `edge-rollout operator --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PLANS = Counter("edge_rollout_plans_total", "Plans computed, by outcome.", ["outcome"])
PLAN_SECONDS = Histogram("edge_rollout_plan_seconds", "Time to gather, plan and write once.")
EDGENODE_WRITES = Counter(
    "edge_rollout_edgenode_writes_total", "Server-side applies of EdgeNode entries."
)
NODES = Gauge("edge_rollout_nodes", "Selected nodes by outcome.", ["namespace", "name", "outcome"])
EVENTS = Counter("edge_rollout_events_total", "Events posted, by reason.", ["reason"])
