"""controller/write.py against the real apiserver: a plan's entries are applied by the writer
threads, each logged once; a refused write is returned (node -> the apiserver's answer) after the
others are written; an entry is removed whatever the EdgeNode's creator put in `spec.models`."""

from __future__ import annotations

import json
import logging

import pytest

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.controller import write
from edge_rollout.kube import client as kube_client
from tests.support import Kubectl

KEY = "write-test/classifier"


def entry(version: str) -> DesiredModel:
    return DesiredModel(
        name=KEY,
        model="classifier",
        version=version,
        variant="int8",
        manifest_digest="sha256:" + "ab" * 32,
        store_url="http://127.0.0.1:1/store",
    )


def entries_of(kubectl: Kubectl, node: str) -> list[dict[str, object]]:
    body = json.loads(kubectl("get", "edgenode", node, "-o", "json").stdout)
    models = body["spec"]["models"]  # never missing nor null: the CRD defaults it to []
    return list(models)


@pytest.mark.usefixtures("crds_installed")
def test_entries_are_applied_concurrently_and_a_refusal_is_returned_after_the_rest(
    kubectl: Kubectl, caplog: pytest.LogCaptureFixture
) -> None:
    api = kube_client.custom_objects(kube_client.api_client())
    nodes = [f"write-{i:02d}" for i in range(3 * write.WRITERS)]
    logger = logging.getLogger("test-write")
    caplog.set_level(logging.INFO, logger="test-write")
    try:
        write.apply_entries(api, KEY, dict.fromkeys(nodes, entry("1.0")), logger)
        assert all(entries_of(kubectl, n)[0]["version"] == "1.0" for n in nodes)
        assert sorted(r.getMessage() for r in caplog.records) == [
            f"edgenode {n}: {KEY} -> 1.0/int8" for n in nodes
        ]

        changes: dict[str, DesiredModel | None] = dict.fromkeys(nodes, entry("2.0"))
        changes["Not_A_Valid_Name"] = entry("2.0")  # the apiserver refuses this name
        changes[nodes[0]] = None  # removes the entry
        failed = write.apply_entries(api, KEY, changes, logger)
        assert list(failed) == ["Not_A_Valid_Name"]
        assert failed["Not_A_Valid_Name"].startswith("HTTP 422 Unprocessable Entity: ")
        assert entries_of(kubectl, nodes[0]) == []
        assert all(entries_of(kubectl, n)[0]["version"] == "2.0" for n in nodes[1:])
        assert "edgenode Not_A_Valid_Name: write-test/classifier -> 2.0/int8 failed: HTTP 422" in (
            caplog.text
        )
    finally:
        kubectl("delete", "edgenode", *nodes, "--ignore-not-found")


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"models": []}, id="empty-list-as-the-agent-creates-it"),
        pytest.param({}, id="no-models"),
        pytest.param(None, id="no-spec"),
    ],
)
@pytest.mark.usefixtures("crds_installed")
def test_an_entry_is_removed_whatever_the_creator_put_in_spec_models(
    kubectl: Kubectl, spec: dict[str, object] | None
) -> None:
    """The agent creates its EdgeNode with `spec.models: []`, so it owns the list: removing the
    operator's last entry by server-side apply left `null` and was refused (422)."""
    api = kube_client.custom_objects(kube_client.api_client())
    node = f"write-created-{len(str(spec))}"
    body: dict[str, object] = {"apiVersion": "edgerollout.dev/v1alpha1", "kind": "EdgeNode",
                               "metadata": {"name": node}}  # fmt: skip
    if spec is not None:
        body["spec"] = spec
    api.create_cluster_custom_object("edgerollout.dev", "v1alpha1", "edgenodes", body)
    logger = logging.getLogger("test-write")
    try:
        assert write.apply_entries(api, KEY, {node: entry("1.0")}, logger) == {}
        assert [e["version"] for e in entries_of(kubectl, node)] == ["1.0"]
        assert write.apply_entries(api, KEY, {node: None}, logger) == {}
        assert entries_of(kubectl, node) == []
        assert write.apply_entries(api, KEY, {node: entry("2.0")}, logger) == {}
        assert [e["version"] for e in entries_of(kubectl, node)] == ["2.0"]
    finally:
        kubectl("delete", "edgenode", node, "--ignore-not-found")
