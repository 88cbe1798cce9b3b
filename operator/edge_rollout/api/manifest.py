"""The variant manifest: one model file (plus external data files) as ordered chunk lists.

Stored zstd-compressed at `manifests/sha256/<hex>`, named by the sha256 of its plain JSON bytes and
covered by the signed release index through `VariantEntry.manifest_digest`. Pure data: no I/O, no
hashing, no compression (see `edge_rollout.store.codec` for that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_rollout.api.common import ApiModel, TextFormat

MANIFEST_FORMAT = "edgerollout.dev/manifest/v1"
HEX_DIGEST_PATTERN = r"^[0-9a-f]{64}$"

HEX_DIGEST = TextFormat(HEX_DIGEST_PATTERN, "must be 64 lowercase hex digits (a sha256)")
HexDigest = Annotated[str, HEX_DIGEST.validator()]
"""A bare sha256 in lower-case hex: the only thing ever used to build an object path."""

FILE_PATH_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$"
"""A file name inside the variant directory: no `/`, no leading dot, so never `..`."""
FILE_PATH = TextFormat(
    FILE_PATH_PATTERN,
    "must be a plain file name like model.onnx: up to 201 letters, digits, '_', '.' or '-', not"
    " starting with '.' or '-' (no '/')",
)

DeltaEncoding = Literal["sub-zigzag-planes", "xor-planes", "sparse-sub-planes", "sparse-run-planes"]
"""How a tensor delta was made from the base tensor's raw values (see docs/store-format.md)."""
GapEncoding = Literal["zstd-prefix"]
"""How a gap delta was made: zstd with the base's gap bytes as raw-content prefix."""


class ChunkRef(ApiModel):
    """One chunk of a file, in file order."""

    digest: HexDigest
    """sha256 of the plain chunk bytes; the object is `chunks/sha256/<digest>` (zstd)."""
    size: int = Field(ge=0)
    """Plain size in bytes."""
    stored: int = Field(ge=0)
    """Size of the stored (compressed) object: what a download of it costs."""


class TensorDelta(ApiModel):
    """A lossless delta that rebuilds one tensor from the same tensor of an earlier release."""

    base: HexDigest
    """sha256 of the base tensor's raw bytes (found in the manifest of the version a node holds)."""
    base_version: str = Field(default="", max_length=128)
    """The release the base comes from (informational; `base` is what must match)."""
    encoding: DeltaEncoding
    """How the residual was computed and regrouped."""
    item_size: int = Field(ge=1, le=8)
    """Bytes per value (1, 2, 4 or 8) the residual was computed on."""
    blob: ChunkRef
    """The residual bytes, stored like a chunk (`chunks/sha256/<digest>`)."""


class GapDelta(ApiModel):
    """A delta that rebuilds a file's gap bytes from the gap bytes of an earlier release's file.

    The gap bytes of a file are its chunks outside every aligned tensor (graph structure, small
    tensors), concatenated in file order.
    """

    base: HexDigest
    """sha256 of the whole base file (held by a node that has that version): its gap bytes,
    as its own manifest places its tensors, are the prefix the delta refers to."""
    base_version: str = Field(default="", max_length=128)
    """The release the base comes from (informational; `base` is what must match)."""
    encoding: GapEncoding = "zstd-prefix"
    """`zstd-prefix`: the blob is one zstd frame compressed with the base's gap bytes as a
    raw-content prefix (as `zstd --patch-from`); it decompresses to this file's gap bytes."""
    blob: ChunkRef
    """The frame, stored like a chunk (`chunks/sha256/<digest>`, wrapped in zstd once more)."""


class TensorRange(ApiModel):
    """Where one initializer's raw values sit, expressed in chunks of its file."""

    name: str = Field(max_length=1024)
    """Initializer name in the ONNX graph."""
    dtype: str = Field(max_length=16)
    """numpy dtype name of the raw values, e.g. `float32`, `int8`."""
    first_chunk: int = Field(ge=0)
    """Index of the first chunk holding the tensor (chunks start exactly at the tensor)."""
    chunk_count: int = Field(ge=1)
    """Number of chunks holding exactly the tensor's bytes."""
    digest: HexDigest
    """sha256 of the tensor's raw bytes (a delta's result is verified against it)."""
    deltas: list[TensorDelta] = Field(default_factory=list, max_length=4)
    """Optional deltas, each only present when smaller than the tensor's chunks."""


class FileEntry(ApiModel):
    """One file of the variant: the model itself, or an external-data file next to it."""

    path: Annotated[str, FILE_PATH.validator()]
    """File name in the model directory (`model.onnx`, `weights.bin`)."""
    size: int = Field(ge=0)
    """Size in bytes."""
    digest: HexDigest
    """sha256 of the whole file."""
    chunks: list[ChunkRef] = Field(default_factory=list)
    """The chunks in order; their concatenation is the file."""
    tensors: list[TensorRange] = Field(default_factory=list)
    """Tensors the chunking was aligned to (large initializers only)."""
    gap_deltas: list[GapDelta] = Field(default_factory=list, max_length=2)
    """Optional deltas for the bytes outside `tensors`, each only present when smaller than the
    gap chunks it replaces."""


class TensorInfo(ApiModel):
    """An input or output of the graph."""

    name: str = Field(max_length=1024)
    """Name in the graph."""
    dtype: str = Field(max_length=16)
    """numpy dtype name, e.g. `float32`, `int32`."""
    shape: list[int | str] = Field(default_factory=list)
    """Dimensions; symbolic ones are names."""


class OnnxFacts(ApiModel):
    """Facts read from the ONNX file at publish time."""

    ir_version: int = Field(default=0, ge=0)
    """ONNX IR version."""
    opsets: dict[str, int] = Field(default_factory=dict)
    """Opset version per domain (`""` is the default domain)."""
    producer: str = Field(default="", max_length=256)
    """Producer name and version."""
    inputs: list[TensorInfo] = Field(default_factory=list)
    """Graph inputs (initializers excluded)."""
    outputs: list[TensorInfo] = Field(default_factory=list)
    """Graph outputs."""
    external_data: list[str] = Field(default_factory=list)
    """External data files the model refers to (also listed in `files`)."""


class Tolerance(ApiModel):
    """How close a node's outputs must be to the golden ones."""

    rtol: float = Field(default=1e-3, ge=0.0)
    """Relative tolerance per value."""
    atol: float = Field(default=1e-4, ge=0.0)
    """Absolute tolerance per value."""
    min_cosine: float = Field(default=0.999, ge=-1.0, le=1.0)
    """Lowest cosine similarity of each output to the golden output."""


class GoldenRef(ApiModel):
    """Golden input/output vectors for the agent's smoke test, stored as content-addressed blobs.

    Written as two blobs, `inputs` (shared by every variant and every release whose sample inputs
    are unchanged) and `outputs`; stores published before hold one `blob` with both."""

    inputs: ChunkRef | None = None
    """A `GoldenInputs` JSON document stored like a chunk."""
    outputs: ChunkRef | None = None
    """A `GoldenOutputs` JSON document stored like a chunk."""
    blob: ChunkRef | None = None
    """Older layout: one `GoldenVectors` JSON document with inputs and outputs."""
    cases: int = Field(ge=1, le=16)
    """Number of input/output cases."""
    tolerance: Tolerance = Field(default_factory=Tolerance)
    """What counts as passing."""

    @model_validator(mode="after")
    def _one_layout(self) -> GoldenRef:
        split = self.inputs is not None and self.outputs is not None
        if split == (self.blob is not None) or (self.inputs is None) != (self.outputs is None):
            raise ValueError("golden needs either both inputs and outputs, or blob (older stores)")
        return self

    def blobs(self) -> list[ChunkRef]:
        """The blobs holding these vectors, inputs first."""
        return [r for r in (self.inputs, self.outputs, self.blob) if r is not None]


class Array(ApiModel):
    """One numpy array, inline: dtype, shape and base64 of its little-endian C-order bytes."""

    dtype: str = Field(max_length=16)
    """numpy dtype name."""
    shape: list[int]
    """Concrete dimensions."""
    data: str
    """Base64 of the raw bytes."""


class GoldenCase(ApiModel):
    """One smoke-test case."""

    inputs: dict[str, Array]
    """Feed, by input name."""
    outputs: dict[str, Array]
    """Expected outputs of this variant, by output name."""


class GoldenInputs(ApiModel):
    """The content of a golden `inputs` blob: the feed of each case."""

    format: Literal["edgerollout.dev/golden-inputs/v1"] = "edgerollout.dev/golden-inputs/v1"
    """Blob format version."""
    cases: list[dict[str, Array]] = Field(min_length=1, max_length=16)
    """Feed of each case, by input name."""


class GoldenOutputs(ApiModel):
    """The content of a golden `outputs` blob: a variant's expected outputs for each case."""

    format: Literal["edgerollout.dev/golden-outputs/v1"] = "edgerollout.dev/golden-outputs/v1"
    """Blob format version."""
    cases: list[dict[str, Array]] = Field(min_length=1, max_length=16)
    """Expected outputs of each case, by output name (float16 when that is within a quarter of
    the tolerance, else the model's own dtype)."""


class GoldenVectors(ApiModel):
    """The content of a golden blob."""

    format: Literal["edgerollout.dev/golden/v1"] = "edgerollout.dev/golden/v1"
    """Blob format version."""
    cases: list[GoldenCase] = Field(min_length=1, max_length=16)
    """The cases."""


def join_golden(inputs: GoldenInputs, outputs: GoldenOutputs) -> GoldenVectors:
    """The cases of an inputs and an outputs blob, paired in order."""
    if len(inputs.cases) != len(outputs.cases):
        raise ValueError(
            f"golden inputs have {len(inputs.cases)} cases, outputs {len(outputs.cases)}"
        )
    pairs = zip(inputs.cases, outputs.cases, strict=True)
    return GoldenVectors(cases=[GoldenCase(inputs=i, outputs=o) for i, o in pairs])


def load_golden(ref: GoldenRef, blobs: Mapping[str, bytes]) -> GoldenVectors:
    """The vectors `ref` names from the plain (verified) bytes of its blobs, by digest.

    Reads both layouts: `inputs` + `outputs`, and the older single `blob`. Raises pydantic's
    ValidationError (a ValueError) on a malformed blob. Pure pydantic, no numpy: the operator
    reads manifests without it."""
    if ref.blob is not None:
        return GoldenVectors.model_validate_json(blobs[ref.blob.digest])
    inputs, outputs = ref.blobs()  # the validator ensures exactly these two
    return join_golden(
        GoldenInputs.model_validate_json(blobs[inputs.digest]),
        GoldenOutputs.model_validate_json(blobs[outputs.digest]),
    )


class Manifest(ApiModel):
    """`manifests/sha256/<hex>`: everything an agent needs to assemble and check one variant."""

    format: Literal["edgerollout.dev/manifest/v1"] = "edgerollout.dev/manifest/v1"
    """Manifest format version."""
    model: str = Field(min_length=1, max_length=63)
    """Model name."""
    version: str = Field(min_length=1, max_length=128)
    """Release version."""
    variant: str = Field(min_length=1, max_length=63)
    """Variant name."""
    files: list[FileEntry] = Field(min_length=1, max_length=64)
    """The model file first, then its external data files."""
    onnx: OnnxFacts = Field(default_factory=OnnxFacts)
    """Facts about the model."""
    golden: GoldenRef | None = None
    """Smoke-test vectors, if the publisher stored any."""

    @property
    def main_file(self) -> FileEntry:
        """The ONNX file itself."""
        return self.files[0]

    def blobs(self) -> list[ChunkRef]:
        """Every object this manifest points at: chunks, delta residuals, golden vectors."""
        refs = [c for f in self.files for c in f.chunks]
        refs += [d.blob for f in self.files for t in f.tensors for d in t.deltas]
        refs += [d.blob for f in self.files for d in f.gap_deltas]
        if self.golden is not None:
            refs += self.golden.blobs()
        return refs
