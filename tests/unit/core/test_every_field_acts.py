"""Every field of the ModelDeployment spec changes behaviour: a table with one case per field.

The fields are found by walking the pydantic model, so a new field without a case fails
`test_every_spec_field_has_a_case`. Each case applies two values of its field to the same base
spec and shows that something observable differs: the planner's output (entries, status,
events), the variant selection, or the agent's decision on the entry the planner wrote
(`policy.decide`, the health gate, a real install against a directory store).
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from edge_rollout.api.analysis import AnalysisRun
from edge_rollout.api.edgenode import DesiredModel, ModelStatus
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.controller import prometheus
from edge_rollout.core import analysis as analyses
from edge_rollout.core import planning
from edge_rollout.core.conditions import rfc3339
from edge_rollout.store import keys
from edge_rollout.store.releases import ReleaseRef, ReleaseUnavailableError, fetch_release
from edge_rollout_agent import apphealth, policy, sync
from tests.unit.agent.models import golden_for, linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore
from tests.unit.core.fixtures import MIB, Fleet, fleet, hardware

Patch = dict[str, Any]
Probe = Callable[[ModelDeploymentSpec, Path], object]


def walk(model: type[BaseModel], prefix: str = "spec") -> list[str]:
    """Dotted camelCase paths of every leaf field (list items and nested models entered)."""
    found = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        nested = _models(info.annotation)
        found += [p for m in nested for p in walk(m, path)] if nested else [path]
    return found


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def merge(base: dict[str, Any], patch: Patch) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


BASE: dict[str, Any] = {
    "model": {"name": "m", "version": "1.0", "store": {"url": "http://127.0.0.1:1/s"}},
    "nodeSelector": {"matchLabels": {"edge": "true"}},
    "strategy": {"maxUnavailable": 1, "minReadySeconds": 0, "progressDeadlineSeconds": 60},
}


def make(patch: Patch) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(merge(BASE, patch))


# --- probes -----------------------------------------------------------------------------------


def _fleet(spec: ModelDeploymentSpec) -> Fleet:
    f = fleet(3)
    f.nodes[2].labels["ring"] = "canary"
    f.spec = spec
    return f


def first_plan(spec: ModelDeploymentSpec, _: Path) -> object:
    """What the first plan writes on a fresh fleet of a cpu, a gpu and an npu node."""
    f = _fleet(spec)
    plan = f.plan()
    entries = {n: d.model_dump() if d else None for n, d in sorted(plan.desired.items())}
    return entries, plan.status.phase, plan.status.message


def small_node_plan(spec: ModelDeploymentSpec, _: Path) -> object:
    """The variant a 450 MiB cpu node gets."""
    f = fleet(1)
    f.nodes[0].hardware = hardware("cpu", memory=450 * MIB)
    f.spec = spec
    entry = f.plan().desired.get("node-000")
    return entry.variant if entry else None


def upgrade(spec: ModelDeploymentSpec, _: Path) -> object:
    """1.0 installed everywhere, then `spec` (at 2.0): which nodes move, step, phase, after a
    few minutes of agents that take 15 s per install."""
    f = _fleet(spec.model_copy(update={"model": spec.model.model_copy(update={"version": "1.0"})}))
    f.spec = f.spec.model_copy(update={"paused": False, "strategy": BASE_STRATEGY})
    f.apply(f.plan())
    f.run()
    f.spec = spec
    f.change_version(spec.model.version)
    f.apply(f.plan())
    first = sorted(n.name for n in f.nodes if n.desired and n.desired.version == "2.0")
    for _tick in range(24):
        f.tick()
    completed = [e.message for e in f.events if e.reason == "StepCompleted"]
    return first, f.status.current_step_index, f.status.phase, f.status.message, completed


BASE_STRATEGY = make({}).strategy


def failing_upgrade(spec: ModelDeploymentSpec, _: Path) -> object:
    """As `upgrade`, with node-000 failing every variant of 2.0."""
    f = _fleet(spec.model_copy(update={"model": spec.model.model_copy(update={"version": "1.0"})}))
    f.spec = f.spec.model_copy(update={"abort": make({}).abort, "strategy": BASE_STRATEGY})
    f.apply(f.plan())
    f.run()
    f.nodes[0].broken = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))
    f.spec = spec
    f.change_version("2.0")
    f.apply(f.plan())
    f.run(ticks=100)
    return (
        f.status.phase,
        f.status.abort_reason,
        sorted((n.name, n.desired.version if n.desired else "") for n in f.nodes),
    )


def silent_node(spec: ModelDeploymentSpec, _: Path) -> object:
    """One node whose agent answers once (Downloading) and then never again, 100 s later."""
    f = fleet(1)
    f.spec = spec
    f.apply(f.plan())
    entry = f.nodes[0].desired
    assert entry is not None
    f.nodes[0].reported = ModelStatus(
        name=entry.name, phase="Downloading", version=entry.version, variant=entry.variant
    )
    f.now += timedelta(seconds=100)
    plan = f.plan()
    return plan.desired["node-000"], [e.reason for e in plan.events]


def ready_node(spec: ModelDeploymentSpec, _: Path) -> object:
    """One node Ready on the target for 60 s."""
    f = fleet(1)
    f.spec = spec
    f.apply(f.plan())
    entry = f.nodes[0].desired
    assert entry is not None
    f.nodes[0].reported = ModelStatus(
        name=entry.name,
        phase="Ready",
        version=entry.version,
        variant=entry.variant,
        active_version=entry.version,
        active_variant=entry.variant,
        ready_since=rfc3339(f.now),
    )
    f.now += timedelta(seconds=60)
    return f.plan().status.phase


def entry_of(spec: ModelDeploymentSpec) -> DesiredModel:
    """The entry the planner writes for one cpu node."""
    f = fleet(1)
    f.spec = spec
    entry = f.plan().desired["node-000"]
    assert entry is not None
    return entry


MONDAY_3AM = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def agent_decision(spec: ModelDeploymentSpec, _: Path) -> object:
    """What the agent decides for the planner's entry, Monday 03:00 UTC on a metered link with
    nothing on disk."""
    node = policy.NodeConditions(metered=True)
    action = policy.decide(entry_of(spec), policy.LocalModel(), node, policy.Limits(), MONDAY_3AM)
    return action.kind, action.reason


def bandwidth(spec: ModelDeploymentSpec, _: Path) -> object:
    return policy.parse_bandwidth(entry_of(spec).delivery.max_bandwidth)


def gate(spec: ModelDeploymentSpec, _: Path) -> object:
    """The health gate on the planner's entry: p95 28 ms, 3 of 4 golden vectors agree."""
    measured = policy.Measured(p95_ms=28.0, agreed=3, cases=4)
    return policy.judge_health(policy.Gate.of(entry_of(spec)), measured)


class _Health(BaseHTTPRequestHandler):
    """An application answering 200 on /healthz and 500 elsewhere."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


def app_check(spec: ModelDeploymentSpec, _: Path) -> object:
    """The agent's appCheck on the planner's entry, against a real HTTP server or command, on a
    simulated clock (PORT in a URL is the server's port)."""
    check = entry_of(spec).app_check
    assert check is not None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        if check.http_get is not None:
            url = check.http_get.url.replace("PORT", str(server.server_address[1]))
            check = check.model_copy(update={"http_get": check.http_get.model_copy(
                update={"url": url})})  # fmt: skip
        now = [0.0]
        return apphealth.run_check(
            check, ticks=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )
    finally:
        server.shutdown()
        server.server_close()


def _app(**check: object) -> Patch:
    return {"healthGate": {"appCheck": {"exec": {"command": ["false"]}, **check}}}


def install(spec: ModelDeploymentSpec, tmp: Path) -> object:
    """A real install of a model whose golden vectors belong to another model."""
    store = ScratchStore(tmp / "store")
    weights, bias = random_weights(8, 4)
    data = linear_model(tmp / "model.onnx", weights, bias)
    manifest = store.publish(data, "1.0", golden=golden_for(weights, bias + 1.0))
    wanted = store.desired(
        manifest, requireTestVectors=entry_of(spec).require_test_vectors, minAgreement=1.0
    )
    env = sync.Environment(
        data_dir=tmp / "data",
        source=store.reader(),
        providers=["CPUExecutionProvider"],
        disk_free=10**10,
        memory_available=10**10,
    )
    try:
        sync.install(DesiredModel.model_validate(wanted), env, runs=2)
    except sync.SyncError as error:
        return error.reason
    return "Installed"


SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _pem(key: Ed25519PrivateKey) -> str:
    return keys.public_key_pem(key.public_key())


def verdict(spec: ModelDeploymentSpec, tmp: Path) -> object:
    """What the operator's release fetch makes of 1.0, published and signed by SIGNER, under
    the spec's trusted keys (the spec's store url is replaced by the scratch store's)."""
    store = ScratchStore(tmp / "store")
    store.key = SIGNER
    store.publish(b"model bytes", "1.0")
    trusted = tuple(spec.model.store.trust_set())
    found = fetch_release(ReleaseRef(store.root.as_uri(), trusted, "m", "1.0"))
    if isinstance(found, ReleaseUnavailableError):
        return found.reason, str(found).replace(str(tmp), "TMP")
    return found.version


def _trusting(*pairs: tuple[str, Ed25519PrivateKey]) -> Patch:
    listed = [{"id": name, "publicKey": _pem(key)} for name, key in pairs]
    return {"model": {"store": {"trustedKeys": listed}}}


ANSWERS = {"errors": "0.01", "errors_bad": "0.5", "success": "0.99", "gone": "NaN"}
"""What the simulated Prometheus answers to each query in `analysed`."""


def analysed(spec: ModelDeploymentSpec, _: Path) -> object:
    """1.0 everywhere, then `spec` at 2.0 with steps [1 node, all] planned every 5 s for 3
    minutes, the analysis's queries answered from ANSWERS: phase, step, and each run."""
    f = _fleet(spec.model_copy(update={"model": spec.model.model_copy(update={"version": "1.0"})}))
    f.spec = f.spec.model_copy(update={"strategy": BASE_STRATEGY})
    f.apply(f.plan())
    f.run()
    f.spec = spec
    f.change_version("2.0")
    for _tick in range(36):
        f.now += timedelta(seconds=5)
        for node in f.nodes:
            node.agent_step(f.now, timedelta(seconds=15))
        run = analyses.running(f.status)
        due = analyses.due(f.spec, f.status, f.now) if run else []
        readings = [
            analyses.Reading(run.step, m.name, f.now, value=ANSWERS[m.query]) for m in due if run
        ]
        deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
        nodes = [n.as_input() for n in f.nodes]
        f.apply(planning.plan_rollout(deployment, f.releases, nodes, f.now, readings))
    runs = [(r.step, r.phase, r.message) for r in f.status.analysis_runs]
    return f.status.phase, f.status.current_step_index, runs


class _Prometheus(BaseHTTPRequestHandler):
    """Answers every instant query with one series of value 0.01."""

    def do_GET(self) -> None:
        body = (
            b'{"status":"success","data":{"resultType":"vector",'
            b'"result":[{"metric":{},"value":[1,"0.01"]}]}}'
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


def measured(spec: ModelDeploymentSpec, _: Path) -> object:
    """What the operator reads for a running analysis from the address (PORT is a real HTTP
    server answering as Prometheus does)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert spec.strategy.analysis is not None
        provider = spec.strategy.analysis.prometheus
        address = provider.address.replace("PORT", str(server.server_address[1]))
        analysis = spec.strategy.analysis.model_copy(
            update={"prometheus": provider.model_copy(update={"address": address})}
        )
        spec = spec.model_copy(
            update={"strategy": spec.strategy.model_copy(update={"analysis": analysis})}
        )
        run = AnalysisRun(step=0, version=spec.model.version)
        status = ModelDeploymentStatus(target_version=spec.model.version, analysis_runs=[run])
        readings = prometheus.measure(spec, status, MONDAY_3AM)
        return [(r.value, r.error.split(" is ")[0]) for r in readings]
    finally:
        server.shutdown()
        server.server_close()


def _analysis(*, address: str = "http://127.0.0.1:9090", **metric: object) -> Patch:
    """steps [1 node, all] with one metric (errors, failing above 0.05) changed by `metric`."""
    one = {"name": "errors", "query": "errors", "failureCondition": "result > 0.05", **metric}
    analysis = {"prometheus": {"address": address}, "metrics": [one]}
    steps = [{"setNodeCount": 1}, {"setNodePercent": 100}]
    return {**V2, "strategy": {"steps": steps, "analysis": analysis}}


# --- the table --------------------------------------------------------------------------------

EXPR = {"key": "edge", "operator": "In", "values": ["true"]}
CANARY_EXPR = {"key": "ring", "operator": "In", "values": ["canary"]}
PIN = {"nodeSelector": {"matchLabels": {"edge": "true"}}, "variant": "int8"}
PIN_EXPR = {"nodeSelector": {"matchExpressions": [EXPR]}, "variant": "int8"}
CANARY_STEPS = {"steps": [{"setNodeCount": 1}, {"pause": {}}]}
WINDOW = {"days": ["Mon"], "startTime": "02:00", "endTime": "04:00"}
V2 = {"model": {"version": "2.0"}}


def selector_cases(
    field: str, wrap: Callable[[Patch], Patch], probe: Probe, expr: Patch = EXPR
) -> dict[str, Any]:
    """matchExpressions key, operator and values, each changed alone."""
    return {
        f"{field}.matchExpressions.{part}": (probe, wrap({"matchExpressions": [expr]}),
                                             wrap({"matchExpressions": [{**expr, part: value}]}))
        for part, value in (("key", "zone"), ("operator", "NotIn"), ("values", ["x"]))
    }  # fmt: skip


def approved(version: str, through: int) -> Patch:
    approval = {"version": version, "throughStep": through}
    return {**V2, "strategy": {**CANARY_STEPS, "approved": approval}}


def window(**changes: object) -> Patch:
    """A window Monday 02:00-04:00 (with `changes`) on a link the agent may use."""
    return {"updatePolicy": {"window": {**WINDOW, **changes}, "delivery": {"metered": "Allow"}}}


def _pin(selector: Patch) -> Patch:
    return {"selection": {"pins": [{"nodeSelector": selector, "variant": "int8"}]}}


def _canary(selector: Patch) -> Patch:
    return {**V2, "strategy": {**CANARY_STEPS, "canarySelector": selector}}


CASES: dict[str, tuple[Probe, Patch, Patch]] = {
    "spec.model.name": (first_plan, {}, {"model": {"name": "m2"}}),
    "spec.model.version": (first_plan, {}, V2),
    "spec.model.store.url": (first_plan, {}, {"model": {"store": {"url": "file:///srv/s"}}}),
    "spec.model.store.publicKey": (first_plan, {}, {"model": {"store": {"publicKey": "k"}}}),
    "spec.model.store.trustedKeys.id": (
        verdict, _trusting(("old", OTHER)), _trusting(("release-2026", OTHER))),
    "spec.model.store.trustedKeys.publicKey": (
        verdict, _trusting(("k", OTHER)), _trusting(("k", SIGNER))),
    "spec.nodeSelector.matchLabels": (
        first_plan, {}, {"nodeSelector": {"matchLabels": {"edge": "no"}}}),
    **selector_cases(
        "spec.nodeSelector", lambda s: {"nodeSelector": {"matchLabels": {}, **s}}, first_plan
    ),
    "spec.priority": (first_plan, {}, {"priority": 5}),
    "spec.selection.prefer": (first_plan, {}, {"selection": {"prefer": "size"}}),
    "spec.selection.allowedPrecisions": (
        first_plan, {}, {"selection": {"allowedPrecisions": ["int8"]}}),
    "spec.selection.minAgreement": (
        first_plan, {"selection": {"prefer": "size"}},
        {"selection": {"prefer": "size", "minAgreement": 0.999}}),
    "spec.selection.memoryHeadroomPercent": (
        small_node_plan, {}, {"selection": {"memoryHeadroomPercent": 50}}),
    "spec.selection.pins.nodeSelector.matchLabels": (
        first_plan, {"selection": {"pins": [PIN]}}, _pin({"matchLabels": {"edge": "no"}})),
    **selector_cases("spec.selection.pins.nodeSelector", _pin, first_plan),
    "spec.selection.pins.variant": (
        first_plan, {"selection": {"pins": [PIN]}},
        {"selection": {"pins": [{**PIN_EXPR, "variant": "fp32"}]}}),
    "spec.selection.allowedVariants": (
        first_plan, {}, {"selection": {"allowedVariants": ["int8"]}}),
    "spec.strategy.canarySelector.matchLabels": (
        upgrade, {**V2, "strategy": CANARY_STEPS}, _canary({"matchLabels": {"ring": "canary"}})),
    **selector_cases("spec.strategy.canarySelector", _canary, upgrade, CANARY_EXPR),
    "spec.strategy.steps.name": (
        upgrade, {**V2, "strategy": CANARY_STEPS},
        {**V2, "strategy": {"steps": [{"setNodeCount": 1, "name": "canary"}, {"pause": {}}]}}),
    "spec.strategy.steps.setNodePercent": (
        upgrade, {**V2, "strategy": {"steps": [{"setNodePercent": 30}, {"pause": {}}]}},
        {**V2, "strategy": {"steps": [{"setNodePercent": 100}, {"pause": {}}]}}),
    "spec.strategy.steps.setNodeCount": (
        upgrade, {**V2, "strategy": CANARY_STEPS},
        {**V2, "strategy": {"steps": [{"setNodeCount": 2}, {"pause": {}}]}}),
    "spec.strategy.steps.pause.duration": (
        upgrade, {**V2, "strategy": CANARY_STEPS},
        {**V2, "strategy": {"steps": [{"setNodeCount": 1}, {"pause": {"duration": "10s"}}]}}),
    "spec.strategy.maxUnavailable": (upgrade, V2, {**V2, "strategy": {"maxUnavailable": 3}}),
    "spec.strategy.progressDeadlineSeconds": (
        silent_node, {"strategy": {"progressDeadlineSeconds": 600}},
        {"strategy": {"progressDeadlineSeconds": 10}}),
    "spec.strategy.minReadySeconds": (
        ready_node, {}, {"strategy": {"minReadySeconds": 300}}),
    "spec.strategy.approved.version": (
        upgrade, approved("3.0", 1), approved("2.0", 1)),
    "spec.strategy.approved.throughStep": (
        upgrade, approved("2.0", 0), approved("2.0", 1)),
    "spec.strategy.analysis.prometheus.address": (
        measured, _analysis(address="http://127.0.0.1:PORT"), _analysis(address="http://127.0.0.1:9")),
    "spec.strategy.analysis.metrics.name": (analysed, _analysis(), _analysis(name="error-rate")),
    "spec.strategy.analysis.metrics.query": (analysed, _analysis(), _analysis(query="errors_bad")),
    "spec.strategy.analysis.metrics.interval": (
        analysed, _analysis(count=3, failureLimit=1, interval="10s"),
        _analysis(count=3, failureLimit=1, interval="5m")),
    "spec.strategy.analysis.metrics.count": (
        analysed, _analysis(interval="5m"), _analysis(interval="5m", count=2)),
    "spec.strategy.analysis.metrics.successCondition": (
        analysed, _analysis(query="success", failureCondition="", successCondition="result > 0.9"),
        _analysis(query="success", failureCondition="", successCondition="result > 0.999")),
    "spec.strategy.analysis.metrics.failureCondition": (
        analysed, _analysis(), _analysis(failureCondition="result > 0.001")),
    "spec.strategy.analysis.metrics.failureLimit": (
        analysed, _analysis(query="gone", count=3, interval="5m"),
        _analysis(query="gone", count=3, interval="5m", failureLimit=2)),
    "spec.healthGate.requireTestVectors": (
        install, {}, {"healthGate": {"requireTestVectors": False}}),
    "spec.healthGate.maxLatencyMs": (gate, {"healthGate": {"minAgreement": 0.5}},
                                     {"healthGate": {"minAgreement": 0.5, "maxLatencyMs": 5}}),
    "spec.healthGate.minAgreement": (gate, {}, {"healthGate": {"minAgreement": 0.75}}),
    "spec.healthGate.appCheck.httpGet.url": (
        app_check, _app(exec=None, httpGet={"url": "http://127.0.0.1:PORT/healthz"}),
        _app(exec=None, httpGet={"url": "http://127.0.0.1:PORT/broken"})),
    "spec.healthGate.appCheck.exec.command": (app_check, _app(), _app(exec={"command": ["true"]})),
    "spec.healthGate.appCheck.timeoutSeconds": (
        app_check, _app(timeoutSeconds=4), _app(timeoutSeconds=8)),
    "spec.healthGate.appCheck.periodSeconds": (
        app_check, _app(timeoutSeconds=4), _app(timeoutSeconds=4, periodSeconds=1)),
    "spec.abort.criteria.failureType": (
        failing_upgrade, {"abort": {"criteria": [{"thresholdPercentage": 30}]}},
        {"abort": {"criteria": [{"thresholdPercentage": 30, "failureType": "TimedOut"}]}}),
    "spec.abort.criteria.thresholdPercentage": (
        failing_upgrade, {"abort": {"criteria": [{"thresholdPercentage": 30}]}},
        {"abort": {"criteria": [{"thresholdPercentage": 80}]}}),
    "spec.abort.criteria.minNumberOfExecutedNodes": (
        failing_upgrade, {"abort": {"criteria": [{"thresholdPercentage": 30}]}},
        {"abort": {"criteria": [{"thresholdPercentage": 30, "minNumberOfExecutedNodes": 9}]}}),
    "spec.abort.failureHandlingPolicy": (
        failing_upgrade, {"abort": {"criteria": [{"thresholdPercentage": 30}]}},
        {"abort": {"criteria": [{"thresholdPercentage": 30}], "failureHandlingPolicy": "Pause"}}),
    "spec.updatePolicy.window.days": (agent_decision, window(), window(days=["Tue"])),
    "spec.updatePolicy.window.startTime": (agent_decision, window(), window(startTime="03:30")),
    "spec.updatePolicy.window.endTime": (agent_decision, window(), window(endTime="02:30")),
    "spec.updatePolicy.window.timeZone": (
        agent_decision, window(), window(timeZone="Asia/Tokyo")),
    "spec.updatePolicy.delivery.delta": (
        agent_decision, {"updatePolicy": {"delivery": {"metered": "Allow"}}},
        {"updatePolicy": {"delivery": {"metered": "Allow", "delta": "Required"}}}),
    "spec.updatePolicy.delivery.metered": (
        agent_decision, {}, {"updatePolicy": {"delivery": {"metered": "Allow"}}}),
    "spec.updatePolicy.delivery.maxBandwidth": (
        bandwidth, {}, {"updatePolicy": {"delivery": {"maxBandwidth": "2Mi"}}}),
    "spec.paused": (upgrade, V2, {**V2, "paused": True}),
}  # fmt: skip


def test_every_spec_field_has_a_case() -> None:
    """A new field needs a case here (or it does nothing and must go)."""
    assert sorted(CASES) == sorted(walk(ModelDeploymentSpec))


@pytest.mark.parametrize("field", sorted(CASES))
def test_the_field_changes_behaviour(field: str, tmp_path: Path) -> None:
    probe, one, other = CASES[field]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = probe(make(one), tmp_path / "a")
    second = probe(make(other), tmp_path / "b")
    assert first != second, f"{field}: {first!r}"


def test_the_gate_reasons_name_value_limit_and_field() -> None:
    spec = make({"healthGate": {"maxLatencyMs": 0.001}})
    reason, message = policy.judge_health(
        policy.Gate.of(entry_of(spec)), policy.Measured(p95_ms=28.0)
    ) or ("", "")
    assert reason == "LatencyAboveGate"
    assert "28.000 ms" in message
    assert "0.001 ms" in message
    assert "spec.healthGate.maxLatencyMs" in message
