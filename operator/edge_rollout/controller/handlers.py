"""Kopf handler registration: each handler gathers, calls `core`, and writes; no business logic.

Import this module (or `kopf run -m edge_rollout.controller.handlers`) to register everything.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import kopf
from pydantic import ValidationError

from edge_rollout.api.common import GROUP, VERSION
from edge_rollout.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from edge_rollout.controller import settings as operator_settings
from edge_rollout.core import status as status_core


@kopf.on.startup(id="configure")
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    operator_settings.configure(settings)


@kopf.on.login(id="login")
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG (read now, not at import time)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed")
@kopf.on.create(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed")
@kopf.on.update(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed", field="spec")
def modeldeployment_changed(
    body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    """Observe the new generation and report it in status."""
    now = dt.datetime.now(dt.UTC)
    generation = int(meta.get("generation", 0))
    current = ModelDeploymentStatus.model_validate(body.get("status") or {})
    try:
        deployment = ModelDeployment.model_validate(dict(body))
    except ValidationError as error:
        message = f"spec cannot be used: {error.errors()[0]['msg']}; fix the spec and re-apply"
        nxt = status_core.invalid_status(current, generation=generation, message=message, now=now)
        logger.error(message)
    else:
        nxt = status_core.accepted_status(
            current, generation=generation, version=deployment.spec.model.version, now=now
        )
        logger.info(f"generation {generation} observed, version {deployment.spec.model.version}")
    patch.status.update(nxt.model_dump(mode="json", by_alias=True, exclude_defaults=False))
