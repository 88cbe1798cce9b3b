"""Writes to EdgeNode.spec: one server-side-apply field manager per ModelDeployment.

Each ModelDeployment applies only its own entry of `spec.models` (a list-map keyed by name), so
concurrent planners for different deployments never overwrite each other, and applying without the
entry removes it. Never touches status (the agent's) or any other entry.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from edge_rollout.api.common import GROUP, VERSION
from edge_rollout.api.edgenode import DesiredModel

PLURAL = "edgenodes"
APPLY = "application/apply-patch+yaml"


def field_manager(deployment_key: str) -> str:
    """`edge-rollout/<namespace>/<name>`: the owner of one deployment's entries."""
    return f"edge-rollout/{deployment_key}"[:128]


def apply_body(node: str, entry: DesiredModel | None) -> dict[str, Any]:
    """The applied configuration: our entry, or no entry (which removes ours)."""
    models = [entry.model_dump(mode="json", by_alias=True, exclude_none=True)] if entry else []
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeNode",
        "metadata": {"name": node},
        "spec": {"models": models},
    }


def apply_entry(
    api: client.CustomObjectsApi, node: str, deployment_key: str, entry: DesiredModel | None
) -> None:
    """Server-side apply this deployment's entry on EdgeNode `node` (creating it if needed)."""
    api.patch_cluster_custom_object(
        GROUP,
        VERSION,
        PLURAL,
        node,
        apply_body(node, entry),
        field_manager=field_manager(deployment_key),
        force=True,
        _content_type=APPLY,
    )
