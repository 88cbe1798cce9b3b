"""The Kubernetes API client the operator and CLI write with (Kopf does its own watching).

The only place that loads credentials: in a pod the service account, elsewhere $KUBECONFIG read at
call time (the client library reads it once at import time otherwise).
"""

from __future__ import annotations

import os

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

__all__ = ["ApiException", "api_client", "context_namespace", "core", "custom_objects"]


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for the cluster this process runs in, or that a kubeconfig context names."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=_kubeconfig_path(kubeconfig), context=context
    )
    return api


def context_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace the kubeconfig context names (as kubectl uses it), else `default`."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "default"
    contexts, current = config.list_kube_config_contexts(_kubeconfig_path(kubeconfig))  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def _kubeconfig_path(kubeconfig: str | None) -> str:
    """The first file of $KUBECONFIG when none is given (kubectl merges a list; we read one)."""
    listed = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return kubeconfig or listed or os.path.expanduser("~/.kube/config")


def custom_objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
