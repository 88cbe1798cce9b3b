"""The reasons an agent reports in `EdgeNode.status.models[].lastError`, and what each means.

Shared vocabulary of the agent (which reports them) and the planner (which acts on them): a
failure is variant-specific (another variant of the same release may work on the node, so the
operator falls back), release-wide (every variant of the release would fail: no fallback) or
transient (the agent retries on its own). Reasons of a Pending model say why it waits.
"""

from __future__ import annotations

from typing import Literal

FailureScope = Literal["variant", "release", "transient"]

VARIANT_SPECIFIC = frozenset(
    {
        "LoadFailed",  # onnxruntime refused the file (an op or type this provider lacks)
        "InferenceFailed",  # loaded, then a run raised
        "RuntimeCrashed",  # the agent died inside onnxruntime three times
        "DoesNotFit",  # not enough memory or disk for this variant
        "LatencyAboveGate",  # p95 above spec.healthGate.maxLatencyMs
        "AgreementBelowGate",  # fewer test vectors agree than spec.healthGate.minAgreement
    }
)
"""Another variant (another precision, provider or size) may pass where this one failed."""

RELEASE_WIDE = frozenset(
    {
        "TestVectorMismatch",  # no golden vector agrees: the release or its vectors are wrong
        "TestVectorsInvalid",  # the golden vectors cannot be read
        "ManifestInvalid",  # the manifest is not the one the signed index names
        "SignatureInvalid",  # the index signature does not verify
        "DigestMismatch",  # the assembled file is not the published one
        "DeltaRequired",  # delivery allows only deltas and the node holds nothing to patch
        "AppUnhealthy",  # the application failed healthGate.appCheck on the new version
    }
)
"""Every variant of the release would fail the same way: falling back only downloads more."""

TRANSIENT = frozenset(
    {
        "StoreUnreachable",  # the store did not answer; retried with backoff
        "StoreShortRead",  # the store kept cutting bodies short; retried
        "NotFound",  # the store lacks an object (a sync in progress); retried
        "ChunkCorrupt",  # a chunk failed its digest; fetched again
        "DeltaMismatch",  # a delta did not rebuild the tensor; the whole chunk is fetched
        "Corrupted",  # a file on disk no longer matches its digest; repaired from the store
        "DiskFull",  # no space left on the data directory; retried when space returns
    }
)
"""The agent retries these on its own; the progress deadline bounds them."""

WAITING = frozenset(
    {"Deferred", "OutsideWindow", "TooHot", "MeteredLink", "DeltaUnavailable", "Backoff"}
)
"""Why a Pending model waits (not failures)."""

FAILURES = VARIANT_SPECIFIC | RELEASE_WIDE | TRANSIENT
"""Every reason an agent may report with phase Failed."""

PERMANENT = VARIANT_SPECIFIC | RELEASE_WIDE
"""The same input fails again: the agent does not retry until its entry changes."""


def failure_scope(reason: str) -> FailureScope:
    """Where a failure reason applies; an unknown reason counts as variant-specific (falling
    back is what the operator did for every failure before reasons were classified).

    >>> failure_scope("TestVectorMismatch"), failure_scope("LatencyAboveGate")
    ('release', 'variant')
    """
    if reason in RELEASE_WIDE:
        return "release"
    if reason in TRANSIENT:
        return "transient"
    return "variant"
