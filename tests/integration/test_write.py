"""controller/write.py against the real apiserver: a plan's entries are applied by the writer
threads, each logged once; a refused write is raised after the others are written."""

from __future__ import annotations

import json
import logging

import pytest
from kubernetes.client.exceptions import ApiException

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
    return list(body["spec"].get("models", []))


@pytest.mark.usefixtures("crds_installed")
def test_entries_are_applied_concurrently_and_a_refusal_is_raised_after_the_rest(
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
        with pytest.raises(ApiException):
            write.apply_entries(api, KEY, changes, logger)
        assert entries_of(kubectl, nodes[0]) == []
        assert all(entries_of(kubectl, n)[0]["version"] == "2.0" for n in nodes[1:])
    finally:
        kubectl("delete", "edgenode", *nodes, "--ignore-not-found")
