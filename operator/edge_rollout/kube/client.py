"""The Kubernetes API client the operator and CLI write with (Kopf does its own watching).

The only place that loads credentials: in a pod the service account, elsewhere $KUBECONFIG read at
call time (the client library reads it once at import time otherwise).
"""

from __future__ import annotations

import os

from kubernetes import client, config


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient for the cluster this process runs in or its kubeconfig points at."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    api: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    return api


def custom_objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
