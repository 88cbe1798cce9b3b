"""The plugin's reads and writes against the cluster: ModelDeployments, EdgeNodes, Nodes.

The only CLI module that talks to the apiserver (through `kube.client`). It parses what it reads
into API models at once and turns API errors into `ClusterError` with a message that says what to
do. It decides nothing; writes are merge patches of `spec` fields and server-side dry runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from pydantic import ValidationError

from edge_rollout.api.common import GROUP, VERSION
from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli.explaining import Fleet
from edge_rollout.core import reports
from edge_rollout.kube import client as kube_client
from edge_rollout.kube import nodes as kube_nodes
from edge_rollout.kube.logrecords import api_status_message

MODELDEPLOYMENTS = "modeldeployments"
EDGENODES = "edgenodes"
FIELD_MANAGER = "kubectl-edge-rollout"


class ClusterError(Exception):
    """A read or write failed; the message says what happened and what to do."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Cluster:
    """One API connection, from --kubeconfig/--context/--as/--as-group or $KUBECONFIG."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        connection: kube_client.Connection | None = None,
    ) -> None:
        try:
            api = kube_client.api_client(
                connection=connection or kube_client.Connection(kubeconfig, context)
            )
        except Exception as error:  # the config loader raises several unrelated types
            raise ClusterError(f"cannot load the kubeconfig: {error}") from error
        self.api = api
        self.objects = kube_client.custom_objects(api)
        self.core = kube_client.core(api)

    def server_version(self) -> str:
        """The apiserver's version (`v1.33.13`)."""
        return str(self._call("the apiserver version", kube_client.server_version, self.api))

    def modeldeployment(self, namespace: str, name: str) -> ModelDeployment:
        body = self._call(
            f"modeldeployment {name} in namespace {namespace}",
            self.objects.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MODELDEPLOYMENTS,
            name,
        )
        return _parse_md(body)

    def find_modeldeployment(self, namespace: str, name: str) -> ModelDeployment | None:
        """The deployment, or None when it does not exist (yet)."""
        try:
            return self.modeldeployment(namespace, name)
        except ClusterError as error:
            if error.status == 404:
                return None
            raise

    def modeldeployments(self, namespace: str | None) -> list[ModelDeployment]:
        """Deployments in `namespace`, or in every namespace for None."""
        where = f"namespace {namespace}" if namespace else "all namespaces"
        if namespace:
            listing = self._call(
                f"modeldeployments in {where}",
                self.objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                MODELDEPLOYMENTS,
            )
        else:
            listing = self._call(
                f"modeldeployments in {where}",
                self.objects.list_cluster_custom_object,
                GROUP,
                VERSION,
                MODELDEPLOYMENTS,
            )
        return [_parse_md(item) for item in listing.get("items", [])]

    def fleet(self, node: str | None = None) -> Fleet:
        """Nodes and EdgeNodes: all of them, or the one named `node`."""
        if node is None:
            listing = self._call(
                "edgenodes", self.objects.list_cluster_custom_object, GROUP, VERSION, EDGENODES
            )
            edgenodes = [_parse_edgenode(item) for item in listing.get("items", [])]
        else:
            found = self._optional(
                self.objects.get_cluster_custom_object, GROUP, VERSION, EDGENODES, node
            )
            edgenodes = [_parse_edgenode(found)] if found else []
        infos = {
            n.metadata.name: kube_nodes.node_info(n.metadata.labels or {}, _node_status(n.status))
            for n in self._nodes(node)
        }
        heartbeat = reports.heartbeat_setting(os.environ.get(reports.AGENT_HEARTBEAT_ENV))
        return Fleet(infos, {str(e.metadata["name"]): e for e in edgenodes}, heartbeat)

    def _nodes(self, node: str | None) -> list[Any]:
        """Node objects (labels, allocatable memory); without permission to read Nodes, none,
        with a warning: selection then sees the labels on the EdgeNodes only."""
        try:
            if node is None:
                return list(self._call("nodes", self.core.list_node).items)
            return [n for n in [self._optional(self.core.read_node, node)] if n is not None]
        except ClusterError as error:
            if error.status != 403:
                raise
            print(f"warning: {error}; using EdgeNodes only", file=sys.stderr)
            return []

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> ModelDeployment:
        """Merge-patch spec fields of a ModelDeployment; returns the updated object."""
        body = self._call(
            f"modeldeployment {name} in namespace {namespace}",
            self.objects.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MODELDEPLOYMENTS,
            name,
            dict(patch),
            _content_type="application/merge-patch+json",
        )
        return _parse_md(body)

    def validate(self, document: Mapping[str, Any]) -> str:
        """Server-side dry run of applying `document` (schema and CEL rules); nothing is stored.

        Returns a warning when the server could not be asked; raises ClusterError when it refuses.
        """
        meta = document.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        try:
            self.objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                MODELDEPLOYMENTS,
                name,
                dict(document),
                dry_run="All",
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        except kube_client.ApiException as error:
            if error.status in (403, 404):
                return f"not validated by the apiserver: {_api_message(error)}"
            raise ClusterError(f"the apiserver refuses it: {_api_message(error)}") from error
        return ""

    def _optional(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except kube_client.ApiException as error:
            if error.status == 404:
                return None
            raise ClusterError(_explain(error, str(args[-1])), error.status) from error

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except kube_client.ApiException as error:
            raise ClusterError(_explain(error, what), error.status) from error
        except (OSError, urllib3.exceptions.HTTPError) as error:
            raise ClusterError(f"cannot reach the cluster: {error}") from error


def _parse_md(body: Mapping[str, Any]) -> ModelDeployment:
    try:
        return ModelDeployment.model_validate(dict(body))
    except ValidationError as error:
        name = (body.get("metadata") or {}).get("name", "?")
        raise ClusterError(f"modeldeployment {name} cannot be read: {error}") from error


def _parse_edgenode(body: Mapping[str, Any]) -> EdgeNode:
    """Agents' reports are untrusted: one the operator cannot use reads as ReportInvalid."""
    return reports.read_edgenode(body, datetime.now(UTC))


def _node_status(status: Any) -> dict[str, Any]:
    allocatable = getattr(status, "allocatable", None) or {}
    return {"allocatable": dict(allocatable)}


def _explain(error: Any, what: str) -> str:
    if error.status == 404:
        return f"{what} not found"
    if error.status == 403:
        return (
            f"forbidden to access {what}: {_api_message(error)} "
            "(ask for the edgerollout view or edit role)"
        )
    return f"{what}: {_api_message(error)}"


def _api_message(error: Any) -> str:
    return api_status_message(error) or str(error.reason)
