"""`kubectl edge-rollout nodes` on agents' reports the operator cannot use: no crash, the node
shows ReportInvalid with the field; a time without a zone reads `?`, not a traceback."""

from __future__ import annotations

from datetime import timedelta

from rich.console import RenderableType

from edge_rollout.cli import fleetview, statusview
from edge_rollout.cli import formatting as fmt
from edge_rollout.cli.explaining import Fleet
from tests.unit.core.fixtures import T0


def text(renderable: RenderableType) -> str:
    return fmt.render_text(renderable)


def test_nodes_view_shows_an_unusable_report_instead_of_crashing() -> None:
    bodies = {
        "naive": {"heartbeatTime": "2026-11-01T12:00:00"},
        "words": {"models": [{"name": "ns/md", "readySince": "yesterday"}]},
        "huge": {"models": [{"name": "ns/md", "bytesFetched": 1 << 70}]},
        "list": ["not", "a", "status"],
    }
    edgenodes = {
        name: fleetview._parse_edgenode({"metadata": {"name": name}, "status": status})
        for name, status in bodies.items()
    }
    out = text(statusview.nodes_view(Fleet({}, edgenodes), T0 + timedelta(minutes=5)))
    assert out.count("ReportInvalid: status") == 4, out
    assert "status.heartbeatTime: must be an RFC 3339 time with a zone" in out
    assert statusview.nodes_data(Fleet({}, edgenodes), T0)


def test_age_of_a_time_without_a_zone_or_not_a_time_is_unknown() -> None:
    assert fmt.age("2026-11-01T12:00:00", T0) == "?"
    assert fmt.age("yesterday", T0) == "?"
    assert fmt.age("2026-11-01T00:00:00Z", T0 + timedelta(minutes=3)) == "3m"
