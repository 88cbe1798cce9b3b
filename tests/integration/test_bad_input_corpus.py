"""The bad-input corpus: every case is refused cleanly, with the exact error a user gets, and
nothing already running is disturbed.

Cases come from tests/corpus/: ModelDeployments and EdgeNodes the apiserver refuses (files in
`modeldeployments/` and `edgenodes/`), models `edge-rollout publish` refuses, tampered stores
`edge-rollout store verify` refuses, and deployments the running operator refuses to roll out
(their Stalled condition or status message). tests/corpus/cases.yaml records each case's exact
error (temporary paths and digests replaced by placeholders) and docs/bad-input.md is rendered
from it, so neither can drift. After a deliberate change of a message, rewrite both with
`EDGE_ROLLOUT_UPDATE_CORPUS=1 .venv/bin/pytest tests/integration/test_bad_input_corpus.py`.

A healthy deployment runs over three scripted nodes the whole time; the last test checks that its
status and EdgeNode entries are exactly what they were before the corpus ran.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.corpus import inputs as corpus_inputs
from tests.integration.fleet_support import publish_index_store
from tests.integration.reporter import ScriptedReporter, delete_nodes
from tests.support import REPO, Kubectl, kopf_operator
from tests.unit.core.fixtures import hardware

CORPUS = REPO / "tests" / "corpus"
CASES_FILE = CORPUS / "cases.yaml"
DOC = REPO / "docs" / "bad-input.md"
UPDATE = os.environ.get("EDGE_ROLLOUT_UPDATE_CORPUS") == "1"
NODES = [f"corpus-{i}" for i in range(3)]
CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
HEX64 = re.compile(r"[0-9a-f]{64}")
KEY_ID = re.compile(
    r"(?<![0-9a-f])(?=[0-9]*[a-f])[0-9a-f]{16}(?![0-9a-f])"
    r"|(?<=\()[0-9]{16}(?=\))|(?<=key id\(s\) )[0-9]{16}"
)
"""A key id (16 hex digits of a key's sha256): the corpus keys are made per run (one of
digits only is told from a number by where it stands)."""
FUTURE = re.compile(r"(?<=: )[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z(?= is [0-9])")
"""A time in the future in a ReportInvalid message (it depends on when the corpus runs)."""


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    refused_by: str


def file_cases(kind: str, refused_by: str) -> list[Case]:
    found = []
    for path in sorted((CORPUS / kind).glob("*.yaml")):
        what = path.read_text().splitlines()[0].removeprefix("# ").strip()
        found.append(Case(f"{kind[:-1]}/{path.stem}", what, refused_by))
    return found


MODELDEPLOYMENTS = file_cases("modeldeployments", "kube-apiserver (`kubectl apply`)")
EDGENODES = file_cases("edgenodes", "kube-apiserver (`kubectl apply` / status patch)")
PUBLISH = [
    Case(f"publish/{name}", what, "`edge-rollout publish`")
    for name, (what, _) in corpus_inputs.PUBLISH.items()
]
STORE = [
    Case(f"store/{name}", what, "`edge-rollout store verify` (the reader agents use)")
    for name, (what, _) in corpus_inputs.TAMPERING.items()
]
OPERATOR = [
    Case(f"operator/{name}", what, "the operator (status of the ModelDeployment)")
    for name, (what, _) in corpus_inputs.DEPLOYMENTS.items()
]
WARNINGS = [
    Case(f"warning/{name}", what, "the operator (a Warning condition; the rollout goes on)")
    for name, (what, _) in corpus_inputs.WARNINGS.items()
]
REPORTS = [
    Case(f"report/{name}", what, "the operator (agents' reports: that node alone is held)")
    for name, (what, _) in corpus_inputs.REPORTS.items()
]
ALL = MODELDEPLOYMENTS + EDGENODES + PUBLISH + STORE + OPERATOR + WARNINGS + REPORTS
ERRORS: dict[str, str] = {}
"""What each case printed in this run (written to cases.yaml in update mode)."""


def recorded() -> dict[str, str]:
    if not CASES_FILE.exists():
        return {}
    return {c["id"]: c["error"] for c in yaml.safe_load(CASES_FILE.read_text())["cases"]}


RECORDED = recorded()


def check(case: Case, error: str, base: Path) -> None:
    """The error, with temporary and checkout paths and digests replaced, is the recorded one."""
    text = error.replace(str(base), "<tmp>").replace(str(REPO), "<repo>").strip()
    text = HEX64.sub("<sha256>", text)
    text = KEY_ID.sub("<key id>", text)
    if case.id.startswith("report/"):
        text = FUTURE.sub("<time>", text)
    ERRORS[case.id] = text
    if not UPDATE:
        assert text == RECORDED.get(case.id), f"{case.id}: the error changed:\n{text}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def healthy(kubectl: Kubectl, crds_installed: None, base: Path) -> Iterator[corpus_inputs.Healthy]:
    """The operator, three scripted nodes and a deployment Ready on them, for the whole module."""
    namespace = "corpus"
    kubectl("create", "namespace", namespace, check=False)
    store = publish_index_store(base / "index-store", ["1.0", "2.0"])
    reporter = ScriptedReporter({n: hardware("cpu") for n in NODES}, delay=0.2)
    reporter.start()
    os.environ["EDGE_ROLLOUT_REPLAN_SECONDS"] = "1"
    try:
        with kopf_operator(corpus_inputs.OPERATOR_ARGS, timeout=600) as runner:
            state = corpus_inputs.start_healthy(kubectl, namespace, store)
            yield state
        assert runner.exception is None, runner.output
    finally:
        reporter.stop()
        kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--wait=false", check=False)
        delete_nodes(NODES)


@pytest.fixture(scope="module")
def published(base: Path) -> corpus_inputs.Published:
    """A real store with one release of a small MLP, published by the CLI."""
    return corpus_inputs.publish_good(base / "published")


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"accepted:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return (result.stderr or result.stdout).strip()


@pytest.mark.parametrize("case", MODELDEPLOYMENTS, ids=lambda c: c.id)
def test_modeldeployment_is_refused_at_apply(
    case: Case, kubectl: Kubectl, healthy: corpus_inputs.Healthy, base: Path
) -> None:
    path = CORPUS / "modeldeployments" / f"{case.id.split('/')[1]}.yaml"
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    error = refused(kubectl("apply", "-n", healthy.namespace, "-f", str(path), check=False))
    check(case, error, base)
    if name != healthy.name:
        assert kubectl("get", "mdep", name, "-n", healthy.namespace, check=False).returncode


@pytest.mark.parametrize("case", EDGENODES, ids=lambda c: c.id)
def test_edgenode_is_refused(
    case: Case, kubectl: Kubectl, healthy: corpus_inputs.Healthy, base: Path
) -> None:
    path = CORPUS / "edgenodes" / f"{case.id.split('/')[1]}.yaml"
    if path.stem.startswith("status-"):
        args = ["patch", "edgenode", NODES[0], "--subresource=status", "--type=merge"]
        error = refused(kubectl(*args, "--patch-file", str(path), check=False))
    else:
        error = refused(kubectl("apply", "-f", str(path), check=False))
        assert kubectl("get", "edgenode", path.stem, check=False).returncode
    check(case, error, base)


@pytest.mark.parametrize("case", PUBLISH, ids=lambda c: c.id)
def test_publish_refuses(case: Case, published: corpus_inputs.Published, base: Path) -> None:
    name = case.id.split("/")[1]
    _, make = corpus_inputs.PUBLISH[name]
    work = base / "publish" / name
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    args = make(work, published)
    target = Path(args[args.index("--store") + 1]) if "--store" in args else store
    before = corpus_inputs.snapshot(target)
    result = subprocess.run(
        [*CLI, "publish", *args], capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    output = refused(result)
    check(case, output[output.rfind("error:") :], base)  # without the progress bars before it
    after = corpus_inputs.snapshot(target)
    # Nothing published or changed; objects staged before the refusal stay unreferenced until
    # `edge-rollout store gc` collects them.
    assert {k: after.get(k) for k in before} == before, "a refused publish changed the store"
    assert all(k.startswith(("chunks/", "manifests/")) for k in after.keys() - before.keys())


@pytest.mark.parametrize("case", STORE, ids=lambda c: c.id)
def test_store_verify_refuses(case: Case, published: corpus_inputs.Published, base: Path) -> None:
    name = case.id.split("/")[1]
    _, tamper = corpus_inputs.TAMPERING[name]
    store = base / "stores" / name
    shutil.copytree(published.root, store)
    public_key = tamper(store, published)
    result = subprocess.run(
        [*CLI, "store", "verify", str(store), "--public-key", str(public_key)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    check(case, refused(result), base)


@pytest.mark.parametrize("case", OPERATOR, ids=lambda c: c.id)
def test_operator_refuses_to_roll_out(
    case: Case, kubectl: Kubectl, healthy: corpus_inputs.Healthy, base: Path
) -> None:
    name = case.id.split("/")[1]
    _, document = corpus_inputs.DEPLOYMENTS[name]
    body = document(healthy)
    kubectl("apply", "-n", healthy.namespace, "-f", "-", input=json.dumps(body))
    try:
        error = corpus_inputs.wait_refusal(kubectl, healthy.namespace, body["metadata"]["name"])
        check(case, error, base)
        key = f"{healthy.namespace}/{body['metadata']['name']}"
        assert corpus_inputs.entries(kubectl, key) == {}, "a refused deployment reached nodes"
    finally:
        name = body["metadata"]["name"]
        kubectl("delete", "mdep", name, "-n", healthy.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def odd_node(kubectl: Kubectl, healthy: corpus_inputs.Healthy) -> Iterator[str]:
    """corpus-odd: a node without an agent (the tests write its reports)."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": corpus_inputs.ODD_NODE, "labels": corpus_inputs.ODD_LABELS},
    }
    edgenode = {"apiVersion": "edgerollout.dev/v1alpha1", "kind": "EdgeNode",
                "metadata": {"name": corpus_inputs.ODD_NODE}}  # fmt: skip
    for body in (node, edgenode):
        kubectl("apply", "-f", "-", input=json.dumps(body))
    report(kubectl, corpus_inputs._report())
    try:
        yield corpus_inputs.ODD_NODE
    finally:
        delete_nodes([corpus_inputs.ODD_NODE])


@pytest.fixture(scope="module")
def odd(kubectl: Kubectl, healthy: corpus_inputs.Healthy, odd_node: str) -> Iterator[str]:
    """The deployment `odd` on corpus-odd (after the warning cases, which use that node too)."""
    body = corpus_inputs._odd(healthy, "odd")
    kubectl("apply", "-n", healthy.namespace, "-f", "-", input=json.dumps(body))
    try:
        yield "odd"
    finally:
        delete_deployment(kubectl, healthy.namespace, "odd")


def delete_deployment(kubectl: Kubectl, namespace: str, name: str) -> None:
    """Delete and wait until the operator has removed its entries and finalizer."""
    kubectl("delete", "mdep", name, "-n", namespace, "--timeout=60s", check=False)


def report(kubectl: Kubectl, status: dict[str, Any]) -> None:
    """Write the odd node's whole status, as its agent would."""
    hardware_now = hardware("cpu").model_dump(mode="json", by_alias=True, exclude_none=True)
    merged = {**status, "hardware": {**hardware_now, **status.get("hardware", {})}}
    patch = [{"op": "replace", "path": "/status", "value": merged}]
    args = ["patch", "edgenode", corpus_inputs.ODD_NODE, "--subresource=status", "--type=json"]
    kubectl(*args, "-p", json.dumps(patch))


@pytest.mark.parametrize("case", WARNINGS, ids=lambda c: c.id)
def test_operator_warns_and_says_what_to_change(
    case: Case, kubectl: Kubectl, healthy: corpus_inputs.Healthy, odd_node: str, base: Path
) -> None:
    name = case.id.split("/")[1]
    _, document = corpus_inputs.WARNINGS[name]
    body = document(healthy)
    kubectl("apply", "-n", healthy.namespace, "-f", "-", input=json.dumps(body))
    try:
        warning = corpus_inputs.wait_warning(kubectl, healthy.namespace, body["metadata"]["name"])
        check(case, warning, base)
        events = kubectl("get", "events", "-n", healthy.namespace, "-o", "json").stdout
        reason = warning.split(" ")[1].rstrip(":")
        assert any(
            e["reason"] == reason and e["involvedObject"]["name"] == body["metadata"]["name"]
            for e in json.loads(events)["items"]
        ), f"no {reason} event"
    finally:
        delete_deployment(kubectl, healthy.namespace, body["metadata"]["name"])


def test_a_deployment_at_the_size_limits_rolls_out_and_is_deleted(
    kubectl: Kubectl, healthy: corpus_inputs.Healthy, odd_node: str
) -> None:
    """Every list and map of the spec at its maximum, applied with kubectl apply (whose
    last-applied annotation holds a copy of it), beside Kopf's state: created, rolled out,
    deleted."""
    body = corpus_inputs.largest_deployment(healthy)
    name, namespace = body["metadata"]["name"], healthy.namespace
    labels = [f"{k}={v}" for k, v in corpus_inputs.LARGEST_LABELS.items()]
    kubectl("label", "node", odd_node, *labels, "--overwrite")
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    try:
        key = f"{namespace}/{name}"
        entry = wait_for(lambda: corpus_inputs.entries(kubectl, key).get(odd_node))
        ready = {"name": key, "version": entry["version"], "variant": entry["variant"],
                 "activeVersion": entry["version"], "activeVariant": entry["variant"]}  # fmt: skip
        report(kubectl, corpus_inputs._report(**ready))
        wait_for(lambda: corpus_inputs.observe(kubectl, namespace, name)[0].get("phase") == "Ready")
        stored = kubectl("get", "mdep", name, "-n", namespace, "-o", "json").stdout
        annotations = json.loads(stored)["metadata"]["annotations"]
        assert len(json.dumps(body["spec"])) > 160 * 1024
        assert sum(map(len, annotations.values())) < 200 * 1024, sorted(annotations)
        deleted = kubectl("delete", "mdep", name, "-n", namespace, "--timeout=60s", check=False)
        assert deleted.returncode == 0, deleted.stderr
        assert kubectl("get", "mdep", name, "-n", namespace, check=False).returncode
        assert corpus_inputs.entries(kubectl, key) == {}
    finally:
        kubectl("delete", "mdep", name, "-n", namespace, "--wait=false", check=False)
        kubectl("label", "node", odd_node, *(f"{k}-" for k in corpus_inputs.LARGEST_LABELS))
        report(kubectl, corpus_inputs._report())


def wait_for(condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError("timed out")


@pytest.mark.parametrize("case", REPORTS, ids=lambda c: c.id)
def test_an_unusable_report_holds_only_its_node(
    case: Case, kubectl: Kubectl, healthy: corpus_inputs.Healthy, odd: str, base: Path
) -> None:
    name = case.id.split("/")[1]
    _, bad = corpus_inputs.REPORTS[name]
    wait_for(lambda: not held(kubectl, healthy.namespace, odd))  # the previous case's is gone
    report(kubectl, bad())
    try:
        found = wait_for(lambda: held(kubectl, healthy.namespace, odd))
        check(case, f"node {found['node']}: {found['reason']}: {found['message']}", base)
        others, _ = corpus_inputs.observe(kubectl, healthy.namespace, healthy.name)
        assert others.get("phase") == "Ready", others
    finally:
        report(kubectl, corpus_inputs._report())


def held(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str] | None:
    """The deployment's worstNodes entry of a node held as ReportInvalid, if any."""
    status, _ = corpus_inputs.observe(kubectl, namespace, name)
    found = [n for n in status.get("worstNodes", []) if n["reason"] == "ReportInvalid"]
    return found[0] if found else None


def test_running_deployment_is_undisturbed(
    kubectl: Kubectl, healthy: corpus_inputs.Healthy
) -> None:
    """Run last: the healthy deployment's status and entries are what they were before."""
    now = corpus_inputs.observe(kubectl, healthy.namespace, healthy.name)
    assert now == healthy.before


def test_corpus_is_recorded_and_documented() -> None:
    """cases.yaml lists every case with its error; docs/bad-input.md is rendered from it."""
    if UPDATE:
        write_corpus()
    assert len(ALL) >= 50
    assert [c["id"] for c in yaml.safe_load(CASES_FILE.read_text())["cases"]] == [c.id for c in ALL]
    assert DOC.read_text() == render(ALL, recorded()), "run with EDGE_ROLLOUT_UPDATE_CORPUS=1"


def write_corpus() -> None:
    missing = [c.id for c in ALL if c.id not in ERRORS]
    assert not missing, f"run the whole module to update: {missing}"
    cases = [{"id": c.id, "what": c.what, "error": ERRORS[c.id]} for c in ALL]
    header = (
        "# The bad-input corpus: each case and the exact error a user gets (temporary paths\n"
        "# shown as <tmp>, digests as <sha256>). Checked and rendered into docs/bad-input.md by\n"
        "# tests/integration/test_bad_input_corpus.py; EDGE_ROLLOUT_UPDATE_CORPUS=1 rewrites it.\n"
    )
    CASES_FILE.write_text(
        header + yaml.safe_dump({"cases": cases}, sort_keys=False, width=100, allow_unicode=True)
    )
    DOC.write_text(render(ALL, recorded()))


def render(cases: list[Case], errors: dict[str, str]) -> str:
    """docs/bad-input.md."""
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.refused_by, []).append(case)
    lines = [
        "# Bad input: what is refused, by whom, with which error",
        "",
        "Generated from `tests/corpus/cases.yaml` by `tests/integration/test_bad_input_corpus.py`,",
        "which feeds every case to the real thing (kube-apiserver with the CRDs, `edge-rollout",
        "publish`, `edge-rollout store verify`, the running operator), checks that it is refused",
        "with exactly this error, and that a deployment already running is not disturbed.",
        f"{len(cases)} cases. Inputs are in `tests/corpus/` (ModelDeployments and EdgeNodes as",
        "files; models and tampered stores are built by `tests/corpus/inputs.py`).",
        "Temporary paths read `<tmp>`, digests `<sha256>`.",
        "",
    ]
    for refused_by, group in groups.items():
        lines += [
            f"## Refused by {refused_by}",
            "",
            "| case | input | error |",
            "| --- | --- | --- |",
        ]
        for case in group:
            error = html.escape(errors.get(case.id, ""), quote=False)
            error = error.replace("|", "\\|").replace("\n", "<br>")
            what = html.escape(case.what, quote=False)
            lines.append(f"| `{case.id}` | {what} | {error} |")
        lines.append("")
    return "\n".join(lines)
