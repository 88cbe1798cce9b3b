"""EdgeNode: one cluster-scoped object per node, named after it.

`spec.models` is what the operator wants on the node (one entry per ModelDeployment that selects
it); `status` is what the node's agent reports. The operator writes spec only, the agent status
only, so each field has one writer and the object count stays O(nodes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edge_rollout.api.common import (
    CONDITION_REASON,
    CONDITIONS_LIST,
    SHA256_DIGEST,
    ApiModel,
    Condition,
    TextFormat,
    defaulted,
    x_validations,
)
from edge_rollout.api.modeldeployment import (
    MAX_TRUSTED_KEYS,
    AcceleratorClass,
    AppCheck,
    Delivery,
    TrustedKey,
    Window,
)

ENTRY_KEY = TextFormat(
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    "must be <namespace>/<modeldeployment>, like fleet/classifier: two names of lowercase"
    " letters, digits, '-' or '.', each starting and ending with a letter or digit",
)
MANIFEST_DIGEST = replace(SHA256_DIGEST, words=SHA256_DIGEST.words + " (or empty)", empty_ok=True)

TIMESTAMP = TextFormat(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$",
    "must be an RFC 3339 time with a zone, like 2026-03-06T23:00:00Z (or empty)",
    empty_ok=True,
)
"""Agents' times: a zone is required (a time without one cannot be compared)."""
Timestamp = Annotated[
    str,
    Field(max_length=64, json_schema_extra=x_validations(TIMESTAMP.rule())),
    TIMESTAMP.validator(),
]
REASON = replace(CONDITION_REASON, empty_ok=False)
MAX_NODE_BYTES = 1 << 50
"""1 PiB: most memory or disk a node may report."""
MAX_MODEL_BYTES = 1 << 42
"""4 TiB: most bytes one model may report fetched or reused on one node, so that a deployment's
sums over a million nodes stay within int64 (the ModelDeployment status fields)."""
MAX_CORES = 65_536
MAX_MS = 3_600_000.0
"""An hour, in milliseconds: the longest latency a node may report."""
Feature = Annotated[str, Field(max_length=64)]

ModelPhase = Literal[
    "Pending", "Downloading", "Verifying", "Loading", "Testing", "Ready", "Failed", "RolledBack"
]


class DesiredModel(ApiModel):
    """One model the operator wants on this node."""

    name: Annotated[str, ENTRY_KEY.validator()] = Field(
        max_length=317, json_schema_extra=x_validations(ENTRY_KEY.rule())
    )
    """Key of the entry: `<namespace>/<modeldeployment>`."""
    model: str = Field(max_length=63)
    """Model name in the store."""
    version: str = Field(max_length=128)
    """Release version to run."""
    variant: str = Field(max_length=63)
    """Variant of the release chosen for this node."""
    manifest_digest: Annotated[str, MANIFEST_DIGEST.validator()] = Field(
        default="", max_length=71, json_schema_extra=x_validations(MANIFEST_DIGEST.rule())
    )
    """`sha256:<hex>` of the variant's manifest, as listed in the signed release index."""
    store_url: str = Field(max_length=2048)
    """Base URL of the store."""
    public_key: str = Field(default="", max_length=4096)
    """ed25519 public key that signs the release index."""
    trusted_keys: list[TrustedKey] = Field(default_factory=list, max_length=MAX_TRUSTED_KEYS)
    """The deployment's store.trustedKeys: a manifest signed by any of them (or publicKey) is
    valid."""
    priority: int = 0
    """Priority of the ModelDeployment (for memory packing on the node)."""
    keep_version: str = Field(default="", max_length=128)
    """Version to keep on disk for instant rollback (the stable one)."""
    window: Window | None = None
    """When the node may update."""
    delivery: Delivery = defaulted(Delivery)
    """Network and delta policy."""
    require_test_vectors: bool = True
    """Fail the model if the release's golden test vectors do not match."""
    max_latency_ms: float | None = Field(default=None, ge=0.0)
    """The deployment's healthGate.maxLatencyMs: highest p95 latency on the node (None: none)."""
    min_agreement: float = Field(default=1.0, ge=0.0, le=1.0)
    """The deployment's healthGate.minAgreement: share of test vectors that must agree."""
    app_check: AppCheck | None = None
    """The deployment's healthGate.appCheck: the application's check after the switch."""
    memory_bytes: int = Field(default=0, ge=0)
    """Memory the chosen variant needs; other deployments' planners count it when packing."""
    requested_at: str = Field(default="", max_length=64)
    """When the operator asked for this version and variant (RFC 3339): the progress deadline
    starts here."""
    excluded_variants: list[str] = Field(default_factory=list, max_length=16)
    """Variants of this version that failed on this node; selection falls back past them."""


class EdgeNodeSpec(ApiModel):
    """What the operator wants on the node."""

    models: list[DesiredModel] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            # An EdgeNode created with `models: []` (as its agent creates it) has the list owned
            # by its creator; a server-side apply that removes the last entry then leaves it
            # null, which the apiserver turns back into [] only with this default (without it:
            # 422 `spec.models in body must be of type array`, and deletions hang).
            "default": [],
        },
    )
    """Desired models, one per ModelDeployment that selects this node."""

    @field_validator("models", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        """A null list (from any writer) reads as no entries."""
        return [] if value is None else value


class Accelerator(ApiModel):
    """An accelerator found on the node, in the project's taxonomy."""

    accelerator_class: AcceleratorClass = Field(alias="class")
    """npu, gpu or cpu."""
    vendor: str = Field(default="", max_length=64)
    """Vendor, lower case: nvidia, intel, hailo, rockchip, amd, …"""
    model: str = Field(default="", max_length=128)
    """Product name as the vendor spells it."""
    memory_bytes: int = Field(default=0, ge=0, le=MAX_NODE_BYTES)
    """Dedicated memory in bytes (0 when it shares system memory)."""
    execution_provider: str = Field(default="", max_length=64)
    """onnxruntime execution provider that drives it, e.g. CUDAExecutionProvider."""


class Hardware(ApiModel):
    """What the agent found on the machine (or read from its hardware profile file)."""

    arch: str = Field(default="", max_length=32)
    """CPU architecture as Go names it: amd64, arm64, arm."""
    cpu_cores: int = Field(default=0, ge=0, le=MAX_CORES)
    """Logical CPU cores."""
    cpu_features: list[Feature] = Field(default_factory=list, max_length=64)
    """ISA features relevant to inference: avx2, avx512f, avx512_vnni, neon, dotprod, …"""
    memory_bytes: int | None = Field(default=None, ge=0, le=MAX_NODE_BYTES)
    """Total memory; absent when unknown (then memory is not checked). 0 means none: nothing
    fits."""
    memory_available_bytes: int = Field(default=0, ge=0, le=MAX_NODE_BYTES)
    """Memory available to models now."""
    disk_free_bytes: int = Field(default=0, ge=0, le=MAX_NODE_BYTES)
    """Free space in the agent's data directory."""
    accelerators: list[Accelerator] = Field(default_factory=list, max_length=16)
    """NPUs and GPUs found."""
    execution_providers: list[Feature] = Field(default_factory=list, max_length=16)
    """onnxruntime execution providers available, best first."""
    temperature_celsius: float | None = Field(default=None, ge=-273.15, le=1000.0)
    """Hottest thermal zone, if the machine has any."""
    metered: bool = False
    """The node's link is metered (cellular); policies may hold back downloads."""
    time_zone: str = Field(default="", max_length=64)
    """The node's IANA time zone."""
    profile: str = Field(default="", max_length=253)
    """Name of the hardware profile file that overrides what was found, if any."""


class LatencySummary(ApiModel):
    """Measured inference latency on the node."""

    p50_ms: float = Field(default=0.0, ge=0.0, le=MAX_MS)
    """Median in milliseconds."""
    p95_ms: float = Field(default=0.0, ge=0.0, le=MAX_MS)
    """95th percentile in milliseconds."""


class ModelError(ApiModel):
    """Why a model failed on the node."""

    reason: Annotated[str, REASON.validator()] = Field(
        max_length=128, json_schema_extra=x_validations(REASON.rule())
    )
    """CamelCase reason, e.g. DigestMismatch, LoadFailed, TestVectorMismatch, DoesNotFit."""
    message: str = Field(default="", max_length=2048)
    """What happened, with the file and check, and what to do."""


class ModelStatus(ApiModel):
    """What the agent reports for one desired model."""

    name: Annotated[str, ENTRY_KEY.validator()] = Field(
        max_length=317, json_schema_extra=x_validations(ENTRY_KEY.rule())
    )
    """Key of the spec entry: `<namespace>/<modeldeployment>`."""
    phase: ModelPhase = "Pending"
    """Pending, Downloading, Verifying, Loading, Testing, Ready, Failed or RolledBack."""
    version: str = Field(default="", max_length=128)
    """Version this phase is about (the one being installed, or the active one when Ready)."""
    variant: str = Field(default="", max_length=63)
    """Variant this phase is about."""
    active_version: str = Field(default="", max_length=128)
    """Version apps on the node are served now (`current`)."""
    active_variant: str = Field(default="", max_length=63)
    """Variant apps on the node are served now."""
    bytes_fetched: int = Field(default=0, ge=0, le=MAX_MODEL_BYTES)
    """Bytes downloaded for this version."""
    bytes_reused: int = Field(default=0, ge=0, le=MAX_MODEL_BYTES)
    """Bytes taken from files already on the node."""
    progress_percent: int = Field(default=0, ge=0, le=100)
    """Download and verification progress."""
    latency: LatencySummary | None = None
    """Measured latency of the active model."""
    memory_bytes: int = Field(default=0, ge=0, le=MAX_NODE_BYTES)
    """Peak memory to load and run the active model."""
    last_error: ModelError | None = None
    """The last failure, or while Pending why the node waits (UpdateWindow, MeteredLink, ...)."""
    last_transition_time: Timestamp = ""
    """When phase last changed (RFC 3339)."""
    ready_since: Timestamp = ""
    """When the active version became Ready (RFC 3339)."""


class EdgeNodeStatus(ApiModel):
    """What the node's agent reports."""

    hardware: Hardware = Field(default_factory=Hardware)
    """Hardware profile."""
    heartbeat_time: Timestamp = ""
    """Last time the agent reported (RFC 3339)."""
    agent_version: str = Field(default="", max_length=64)
    """Version of the agent."""
    models: list[ModelStatus] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Per-model state."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, json_schema_extra=CONDITIONS_LIST
    )
    """Ready when the agent is connected and serving every desired model."""


class EdgeNode(ApiModel):
    """An edge node's desired models and reported state."""

    api_version: Literal["edgerollout.dev/v1alpha1"] = "edgerollout.dev/v1alpha1"
    kind: Literal["EdgeNode"] = "EdgeNode"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: EdgeNodeSpec = Field(default_factory=EdgeNodeSpec)
    status: EdgeNodeStatus = Field(default_factory=EdgeNodeStatus)
