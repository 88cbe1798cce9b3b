"""Kopf settings for the edge-rollout operator (KUBERNETES.md section 3.3).

State lives in annotations with our prefix, not in status fields Kopf would invent; the finalizer
carries our brand; watches time out server-side so a silent connection is noticed.
"""

from __future__ import annotations

import kopf

PREFIX = "edgerollout.dev"


def configure(settings: kopf.OperatorSettings) -> None:
    """Apply the operator's Kopf settings."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    settings.scanning.disabled = True
    settings.peering.name = "edge-rollout"
