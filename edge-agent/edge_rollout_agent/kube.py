"""The agent's only contact with the API server: its own EdgeNode, nothing else.

Gets or creates the cluster-scoped EdgeNode named after the node, watches it with a field
selector on its name (never a client-side filter over all nodes), and merge-patches the status
subresource. Must not decide anything and must not touch any other object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes import config as _config
from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException

from edge_rollout.api.common import API_VERSION, GROUP, VERSION
from edge_rollout.api.edgenode import EdgeNode, EdgeNodeStatus

PLURAL = "edgenodes"
MERGE_PATCH = "application/merge-patch+json"
log = logging.getLogger(__name__)
config: Any = _config  # the config and watch modules are untyped
watch: Any = _watch


def load_config(kubeconfig: str | None) -> client.ApiClient:
    """An API client: the given kubeconfig, in-cluster config in a pod, else the default."""
    if kubeconfig:
        api_client: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        api_client = client.ApiClient()
    else:
        api_client = config.new_client_from_config()
    return api_client


class EdgeNodeApi:
    """Get, create, watch and status-patch one EdgeNode."""

    def __init__(self, api_client: client.ApiClient, node: str, timeout: float = 10.0) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.node = node
        self.timeout = timeout

    def get(self) -> EdgeNode | None:
        """The EdgeNode, or None when it does not exist."""
        try:
            body = self.api.get_cluster_custom_object(GROUP, VERSION, PLURAL, self.node,
                                                      _request_timeout=self.timeout)  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return EdgeNode.model_validate(body)

    def create(self) -> EdgeNode:
        """Create the EdgeNode with an empty spec (the operator fills it); tolerate a race."""
        body = {"apiVersion": API_VERSION, "kind": "EdgeNode", "metadata": {"name": self.node},
                "spec": {"models": []}}  # fmt: skip
        try:
            created = self.api.create_cluster_custom_object(
                GROUP, VERSION, PLURAL, body, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            found = self.get()
            if found is None:
                raise
            return found
        return EdgeNode.model_validate(created)

    def ensure(self) -> EdgeNode:
        """The EdgeNode, created when missing."""
        return self.get() or self.create()

    def patch_status(self, status: EdgeNodeStatus) -> None:
        """Merge-patch `.status` (the status subresource) with the whole status."""
        body = {"status": status_body(status)}
        self.api.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, self.node, body, _content_type=MERGE_PATCH,
            _request_timeout=self.timeout,
        )  # fmt: skip

    def watch(self, resource_version: str, timeout_seconds: int = 300) -> Iterator[EdgeNode]:
        """EdgeNode versions as they change, from `resource_version`, for one watch session."""
        stream = watch.Watch().stream(
            self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL,
            field_selector=f"metadata.name={self.node}", resource_version=resource_version,
            timeout_seconds=timeout_seconds, _request_timeout=timeout_seconds + 30,
        )  # fmt: skip
        for event in stream:
            if event["type"] in ("ADDED", "MODIFIED"):
                yield EdgeNode.model_validate(event["object"])
            elif event["type"] == "DELETED":
                log.warning("EdgeNode %s was deleted; creating it again", self.node)
                return  # the caller ensures it again (or takes the operator's new one)
            elif event["type"] == "ERROR":
                log.info("watch of EdgeNode %s ended: %s", self.node, event["object"])
                return


def status_body(status: EdgeNodeStatus) -> dict[str, Any]:
    """The status as camelCase JSON. Lists (models, conditions) are replaced whole by a merge
    patch; the one optional scalar outside them is sent as null so the patch clears it."""
    body = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["hardware"].setdefault("temperatureCelsius", None)
    body["hardware"].setdefault("memoryBytes", None)
    return body


def resource_version(node: EdgeNode) -> str:
    """metadata.resourceVersion of an EdgeNode read from the cluster."""
    return str(node.metadata.get("resourceVersion", ""))
