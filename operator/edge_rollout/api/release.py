"""The release index: one model version, one entry per variant with measured metadata.

Plays the role an OCI image index plays for multi-arch images. Written by `edge-rollout publish`,
signed (detached ed25519) and read by the operator (to select variants) and by agents (to find
manifests). Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Final, Literal

from pydantic import Field

from edge_rollout.api.common import SHA256_DIGEST, ApiModel
from edge_rollout.api.modeldeployment import VARIANT_NAME, AcceleratorClass, Precision

STORE_FORMAT: Final = "edgerollout.dev/store/v1"
FILE_DIGEST = replace(SHA256_DIGEST, words=SHA256_DIGEST.words + " (or empty)", empty_ok=True)


class Requirements(ApiModel):
    """What a node needs to run a variant (Seldon's requirements, Open Horizon's constraints)."""

    accelerator_class: AcceleratorClass = "cpu"
    """The class of accelerator the variant was built for: npu, gpu or cpu."""
    execution_providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    """onnxruntime execution providers that can run it; the node needs at least one."""
    arch: list[str] = Field(default_factory=list)
    """CPU architectures it runs on (amd64, arm64); empty means any."""
    cpu_features: list[str] = Field(default_factory=list)
    """ISA features it needs (e.g. avx512_vnni for fast int8 on x86)."""
    min_memory_bytes: int = Field(default=0, ge=0)
    """Memory the node must have free to load and run it (measured peak plus margin)."""


class Agreement(ApiModel):
    """How closely a variant's outputs follow the fp32 model on sample inputs."""

    cosine: float = Field(default=1.0, ge=-1.0, le=1.0)
    """Mean cosine similarity of outputs."""
    max_abs_error: float = Field(default=0.0, ge=0.0)
    """Largest absolute difference of any output value."""
    top1: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of samples with the same arg-max, when the output is a classification."""


class Measurements(ApiModel):
    """Figures measured with onnxruntime on the publishing machine."""

    file_bytes: int = Field(ge=0)
    """Size of the model file(s)."""
    peak_memory_bytes: int = Field(default=0, ge=0)
    """Peak resident memory added by loading and running it."""
    latency_p50_ms: float = Field(default=0.0, ge=0.0)
    """Median latency of one inference."""
    latency_p95_ms: float = Field(default=0.0, ge=0.0)
    """95th percentile latency of one inference."""
    agreement: Agreement = Field(default_factory=Agreement)
    """Agreement with fp32."""
    measured_with: list[str] = Field(default_factory=list)
    """Execution providers the figures were measured with (empty when not measured)."""
    input_shapes: dict[str, list[int]] = Field(default_factory=dict)
    """The concrete input shapes the figures were measured at (a model's dynamic dimensions
    chosen by the publisher or given with `--input-shape`)."""
    not_measured: str = Field(default="", max_length=1024)
    """Why only `fileBytes` is known: the figures above are then defaults, not measurements (e.g.
    the variant's execution provider is not available on the publishing machine)."""


class VariantEntry(ApiModel):
    """One variant of the release."""

    name: Annotated[str, VARIANT_NAME.validator()] = Field(min_length=1, max_length=63)
    """Variant name, e.g. `int8`, `fp16-gpu`."""
    precision: Precision
    """fp32, fp16 or int8."""
    manifest_digest: Annotated[str, SHA256_DIGEST.validator()]
    """`sha256:<hex>` of the variant's manifest file: the signature covers it through this."""
    requirements: Requirements = Field(default_factory=Requirements)
    """What a node needs."""
    measurements: Measurements
    """What was measured."""
    manifest_size: int = Field(default=0, ge=0)
    """Stored (compressed) size of the manifest object, for download accounting."""
    file_digest: Annotated[str, FILE_DIGEST.validator()] = ""
    """`sha256:<hex>` of the assembled model file (also in the manifest)."""
    download_bytes: int = Field(default=0, ge=0)
    """Stored bytes of all chunks: what a node without any earlier version downloads."""
    built_by: str = Field(default="", max_length=1024)
    """How the publisher made the file: `as given`, `float16 conversion`, `onnxruntime dynamic
    int8`, `onnxruntime static int8 (QDQ, N calibration samples)`, `user-supplied <file>`."""


class Release(ApiModel):
    """`models/<model>/<version>/index.json`."""

    format: Literal["edgerollout.dev/store/v1"] = STORE_FORMAT
    """Store format version."""
    model: str = Field(min_length=1, max_length=63)
    """Model name."""
    version: str = Field(min_length=1, max_length=128)
    """Release version."""
    created: str = ""
    """When it was published (RFC 3339)."""
    variants: list[VariantEntry] = Field(min_length=1)
    """The variants, one per kind of hardware."""
    previous_version: str = Field(default="", max_length=128)
    """The release that tensor deltas in this release's manifests are computed against."""

    def variant(self, name: str) -> VariantEntry | None:
        """The variant called `name`, if the release has it."""
        return next((v for v in self.variants if v.name == name), None)
