"""Kopf settings for the edge-rollout operator (KUBERNETES.md section 3.3).

State lives in annotations with our prefix, not in status fields Kopf would invent; the finalizer
carries our brand; watches time out server-side so a silent connection is noticed. Retries are
short and capped: planning is level-triggered, so after an apiserver restart the operator should
be writing again within seconds, not after Kopf's default 60 s handler backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

import kopf

PREFIX = "edgerollout.dev"
HANDLER_BACKOFF_SECONDS = 5.0
"""A failed handler (the apiserver away, a write refused) runs again after this long."""
API_BACKOFFS = (0.5, 1, 2, 3, 5, 5, 5, 5, 5, 5, 5, 5)
"""Waits between retries of one API request: about as long in total as Kopf's default (54 s),
but never more than 5 s apart, so a returning apiserver is noticed at once."""


def configure(settings: kopf.OperatorSettings) -> None:
    """Apply the operator's Kopf settings."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = spec_digest_storage()
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = API_BACKOFFS
    settings.execution.default_backoff = HANDLER_BACKOFF_SECONDS
    # Only warnings and errors of the log become Kubernetes Events: the per-node INFO lines (one
    # per EdgeNode written, 10,000 in a fleet-wide wave) stay in the log; the rollout's own Events
    # (steps, aborts, fallbacks) are posted by `write.post_events`.
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = True
    settings.peering.name = "edge-rollout"


class SpecDigestStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's last-handled configuration as a digest of the spec, not a copy of it.

    Kopf keeps the spec it last handled in an annotation to compute diffs; annotations share
    256 KiB, and a copy of a large spec next to kubectl's last-applied copy leaves no room (the
    deployment could be created but never deleted). The handlers replan from the whole body and
    read no diff, so a changed digest is all they need: any spec change still fires
    `modeldeployment_changed`, and the annotation stays under 100 bytes.
    """

    def build(self, *, body: Any, extra_fields: Iterable[Any] | None = None) -> Any:
        essence = super().build(body=body, extra_fields=extra_fields)
        spec = json.dumps(essence.get("spec", {}), sort_keys=True, separators=(",", ":"))
        return {"spec": {"sha256": hashlib.sha256(spec.encode()).hexdigest()}}


def spec_digest_storage() -> kopf.DiffBaseStorage:
    """The diffbase storage: our annotation key, holding a digest of the spec."""
    return SpecDigestStorage(prefix=PREFIX, key="last-handled-configuration")
