"""A store that lies: every whole-object GET is answered 200 with a short body (and a
Content-Length that agrees), while Range requests are answered correctly.

The fault proxy plays that store in front of real nginx. The reader notices the short body by
the stored size the signed manifest gives, completes it with a Range request and says what the
store did (`StoreShortRead: <url> returned 200 with N of M bytes; retried with Range`); a real
agent installs the model through it. A store whose Range answers are cut short too ends as
`StoreShortRead` in the node's status, not as an unreachable store.
"""

from __future__ import annotations

import logging
import random
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import open_transport
from edge_rollout.testing.controlplane import ControlPlane
from tests.fixtures.faulty_http import Fault, FaultyProxy
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.integration.test_agent import phase_is, publish
from tests.support import Kubectl
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx
SHORT_READ = re.compile(
    r"StoreShortRead: http://127\.0\.0\.1:\d+/chunks/sha256/[0-9a-f]{64} returned 200 with"
    r" (\d+) of (\d+) bytes; retried with Range"
)


def test_the_reader_completes_short_200s_with_range_and_says_so(
    nginx: store_fixtures.Nginx, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ScratchStore(nginx.root)
    manifest = store.publish(random.Random(1).randbytes(200_000), "1.0")
    caplog.set_level(logging.WARNING, logger="edge_rollout.store.http")
    with FaultyProxy(nginx.url, Fault("short", times=None)) as proxy:
        reader = StoreReader(open_transport(proxy.url), store.key.public_key())
        for ref in manifest.files[0].chunks:
            assert reader.fetch_chunk(ref) == store.reader().fetch_chunk(ref)
    chunks = len(manifest.files[0].chunks)
    assert proxy.injected["short"] == chunks
    found = SHORT_READ.findall(caplog.text)
    assert len(found) == chunks
    assert all(int(got) < int(whole) for got, whole in found)


@pytest.mark.usefixtures("crds_installed")
def test_an_agent_installs_through_a_store_that_answers_short(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0)
    with FaultyProxy(nginx.url, Fault("short", times=None)) as proxy:
        agent = _start(control_plane, kubectl, tmp_path)
        try:
            set_models(kubectl, agent.node, [v1 | {"storeUrl": proxy.url}])
            wait_for("Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        finally:
            agent.kill(signal.SIGTERM)
    assert proxy.injected["short"] > 0
    assert SHORT_READ.search(agent.log.read_text())


@pytest.mark.usefixtures("crds_installed")
def test_a_store_that_cuts_range_answers_too_is_reported_as_a_short_read(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0)
    with FaultyProxy(nginx.url, Fault("truncate", times=None)) as proxy:
        agent = _start(control_plane, kubectl, tmp_path)
        try:
            set_models(kubectl, agent.node, [v1 | {"storeUrl": proxy.url}])
            reported = wait_for("the short read reported", lambda: _short(kubectl, agent.node),
                                120, log=agent.log)  # fmt: skip
        finally:
            agent.kill(signal.SIGTERM)
    message = reported["lastError"]["message"]
    assert "short-read check failed: returned 200 with" in message
    assert "retried with Range 4 times" in message


def _start(control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path) -> AgentProcess:
    node = f"edge-{random.randrange(10**6)}"
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
    agent.start()
    wait_for("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
    return agent


def _short(kubectl: Kubectl, node: str) -> dict[str, Any] | None:
    status = model_status(kubectl, node, "ns/dep")
    error = (status or {}).get("lastError") or {}
    return status if error.get("reason") == "StoreShortRead" else None
