"""healthGate.appCheck on the agent: the schedule (property), real commands and HTTP answers,
and the switch back to `previous` on a real model directory."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import AppCheck
from edge_rollout_agent import apphealth, sync
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.policy import Installed
from tests.unit.agent.models import linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore


def check(**fields: object) -> AppCheck:
    return AppCheck.model_validate({"exec": {"command": ["false"]}, **fields})


@given(st.integers(1, 3600), st.integers(1, 300))
def test_attempts_run_every_period_within_the_timeout(timeout: int, period: int) -> None:
    offsets = apphealth.attempt_offsets(check(timeoutSeconds=timeout, periodSeconds=period))
    assert offsets[0] == 0.0
    assert all(b - a == period for a, b in itertools.pairwise(offsets))
    assert offsets[-1] < timeout or len(offsets) == 1
    assert offsets[-1] + period >= timeout


def simulated(app: AppCheck) -> apphealth.Verdict:
    now = [0.0]
    return apphealth.run_check(
        app, ticks=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )


def test_a_command_is_healthy_on_exit_0_and_says_what_it_printed() -> None:
    ok = simulated(check(exec={"command": [sys.executable, "-c", "print('fine')"]}))
    assert (ok.healthy, ok.attempts, ok.answer) == (True, 1, "exit 0 fine")
    bad = simulated(check(exec={"command": [sys.executable, "-c", "exit('no model')"]},
                          timeoutSeconds=6, periodSeconds=2))  # fmt: skip
    assert (bad.healthy, bad.attempts, bad.answer) == (False, 3, "exit 1 no model")


def test_a_command_that_hangs_is_stopped_at_the_period() -> None:
    hung = simulated(check(exec={"command": ["sleep", "30"]}, timeoutSeconds=1))
    assert not hung.healthy
    assert hung.answer == "no exit within 1.0 s"
    missing = simulated(check(exec={"command": ["/nonexistent/app-health"]}, timeoutSeconds=1))
    assert missing.answer.startswith("cannot run:")


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = {"/healthz": 200, "/moved": 302}.get(self.path, 500)
        body = f"answer {code}".encode()
        self.send_response(code)
        self.send_header("Location", "/healthz")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def app_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def http(url: str) -> AppCheck:
    return AppCheck.model_validate({"httpGet": {"url": url}, "timeoutSeconds": 2})


def test_an_http_check_wants_2xx_and_does_not_follow_redirects(app_url: str) -> None:
    assert simulated(http(f"{app_url}/healthz")) == apphealth.Verdict(
        True, 1, "HTTP 200 answer 200"
    )
    assert simulated(http(f"{app_url}/boom")).answer == "HTTP 500 answer 500"
    assert simulated(http(f"{app_url}/moved")).answer.startswith("HTTP 302")
    refused = simulated(http("http://127.0.0.1:1/healthz"))
    assert not refused.healthy
    assert refused.answer.startswith("no answer:")


def test_exactly_one_kind_and_an_http_url() -> None:
    for bad in ({}, {"exec": {"command": ["true"]}, "httpGet": {"url": "http://a/"}},
                {"httpGet": {"url": "file:///etc/passwd"}}):  # fmt: skip
        with pytest.raises(ValueError, match=r"exactly one of httpGet or exec|http:// or https://"):
            AppCheck.model_validate(bad)


def _install(store: ScratchStore, tmp: Path, version: str) -> DesiredModel:
    data = linear_model(tmp / f"{version}.onnx", *random_weights(8, 4))
    wanted = DesiredModel.model_validate(store.desired(store.publish(data, version)))
    env = sync.Environment(data_dir=tmp / "data", source=store.reader(),
                           providers=["CPUExecutionProvider"], disk_free=10**10,
                           memory_available=10**10)  # fmt: skip
    sync.install(wanted, env, runs=2)
    return wanted


def test_unhealthy_switches_back_to_previous_and_deletes_the_refused_version(
    tmp_path: Path,
) -> None:
    store = ScratchStore(tmp_path / "store")
    _install(store, tmp_path, "1.0")
    wanted = _install(store, tmp_path, "2.0")
    model_dir = ModelDir(tmp_path / "data", wanted.name)
    assert model_dir.link("current") == Installed("2.0", "fp32")
    entry = wanted.model_copy(update={"app_check": check(timeoutSeconds=1)})
    failed = apphealth.check_app(entry, model_dir)
    assert failed is not None
    restored, message = failed
    assert restored == model_dir.link("current") == Installed("1.0", "fp32")
    assert not model_dir.path(Installed("2.0", "fp32")).exists()
    assert "command ['false'] answered 'exit 1'" in message
    assert "spec.healthGate.appCheck.timeoutSeconds=1" in message
    assert "switched back to 1.0/fp32 and deleted 2.0/fp32" in message
    again = apphealth.check_app(entry, model_dir)
    assert again is not None
    assert "no previous version" in again[1]
    healthy = wanted.model_copy(update={"app_check": check(exec={"command": ["true"]})})
    assert apphealth.check_app(healthy, model_dir) is None
    assert apphealth.check_app(wanted, model_dir) is None
