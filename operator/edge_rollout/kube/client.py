"""The Kubernetes API client the operator and CLI write with (Kopf does its own watching).

The only place that loads credentials: in a pod the service account, elsewhere the kubeconfig as
kubectl reads it ($KUBECONFIG read at call time, a list of files merged, --context, --as).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPHeaderDict

__all__ = [
    "ApiException",
    "Connection",
    "api_client",
    "context_namespace",
    "core",
    "current_context",
    "custom_objects",
    "server_version",
]


@dataclass(frozen=True)
class Connection:
    """How to reach the cluster, with kubectl's flags: --kubeconfig, --context, --as, --as-group."""

    kubeconfig: str | None = None
    context: str | None = None
    user: str | None = None
    groups: Sequence[str] = field(default_factory=tuple)


def api_client(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    connection: Connection | None = None,
) -> client.ApiClient:
    """An ApiClient for the cluster this process runs in, or that a kubeconfig context names.

    Inside a pod without an explicit kubeconfig or context, the service account; otherwise the
    kubeconfig files kubectl would read, merged, with impersonation headers for --as/--as-group.
    """
    conn = connection or Connection(kubeconfig, context)
    if _in_cluster(conn):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    else:
        paths = kubeconfig_paths(conn.kubeconfig)
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=paths, context=conn.context or current_context(paths)
        )
    if conn.user or conn.groups:
        inner = api.rest_client.pool_manager
        api.rest_client.pool_manager = _Impersonating(inner, conn.user, conn.groups)  # type: ignore[assignment]
    return api


def context_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace the kubeconfig context names (as kubectl uses it), else `default`."""
    if _in_cluster(Connection(kubeconfig, context)):
        return "default"
    paths = kubeconfig_paths(kubeconfig)
    contexts, _ = config.list_kube_config_contexts(paths)  # type: ignore[no-untyped-call]
    wanted = context or current_context(paths)
    chosen = next((c for c in contexts if c["name"] == wanted), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def kubeconfig_paths(kubeconfig: str | None) -> str:
    """--kubeconfig, else $KUBECONFIG as it is now (a `:`-separated list that the client merges
    as kubectl does: the first file naming a context, cluster or user wins), else ~/.kube/config."""
    return kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def current_context(paths: str) -> str | None:
    """The current context as kubectl picks it from a list of files: the first file that sets
    one wins (the client library would take the last)."""
    for path in paths.split(os.pathsep):
        try:
            with open(os.path.expanduser(path)) as f:
                document = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue  # kubectl skips missing files; a broken one the loader reports
        current = document.get("current-context") if isinstance(document, dict) else None
        if current:
            return str(current)
    return None


def server_version(api: client.ApiClient) -> str:
    """The apiserver's gitVersion, e.g. `v1.33.13`."""
    info = client.VersionApi(api).get_code()
    return str(info.git_version)


def _in_cluster(conn: Connection) -> bool:
    explicit = conn.kubeconfig is not None or conn.context is not None
    return not explicit and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


class _Impersonating:
    """The urllib3 pool manager with kubectl's impersonation headers on every request: one
    `Impersonate-User`, one `Impersonate-Group` header per group (the client's own default
    headers are a dict and cannot repeat a header)."""

    def __init__(self, inner: Any, user: str | None, groups: Sequence[str]) -> None:
        self._inner = inner
        self._user = user
        self._groups = tuple(groups)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = HTTPHeaderDict(kwargs.pop("headers", None) or {})
        if self._user:
            headers["Impersonate-User"] = self._user
        for group in self._groups:
            headers.add("Impersonate-Group", group)
        return self._inner.request(method, url, headers=headers, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def custom_objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
