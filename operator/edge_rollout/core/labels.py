"""Label selectors, and the hardware a node's labels tell before its agent has reported.

Pure: no client, no clock. The label mapping is documented in docs/selection.md; users extend it
by labelling nodes with the `edgerollout.dev/*` keys below (or by running Node Feature Discovery
and NVIDIA GPU Feature Discovery, whose labels are read as they are).
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_rollout.api.common import LabelSelector, LabelSelectorRequirement
from edge_rollout.api.edgenode import Accelerator, Hardware

ARCH = "kubernetes.io/arch"
NFD_CPUID = "feature.node.kubernetes.io/cpu-cpuid."
GPU_PRESENT = "nvidia.com/gpu.present"
GPU_PRODUCT = "nvidia.com/gpu.product"
GPU_MEMORY_MIB = "nvidia.com/gpu.memory"
OUR_ACCELERATOR = "edgerollout.dev/accelerator"
"""`npu`, `gpu` or `cpu`, optionally `class.vendor.model`, e.g. `npu.hailo.hailo-8`."""
OUR_PROVIDERS = "edgerollout.dev/execution-providers"
"""Execution providers, dot-separated short names: `cuda.cpu`, `openvino.cpu`."""
OUR_METERED = "edgerollout.dev/metered"

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "rknpu": "RknpuExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
}
ACCELERATOR_PROVIDER = {"gpu": "CUDAExecutionProvider", "npu": "", "cpu": "CPUExecutionProvider"}

LABELS_PROFILE = "node-labels"
"""`Hardware.profile` of what `hardware_from_labels` read from a Node's labels: its agent has not
reported the node's hardware (yet, or since its EdgeNode was created again)."""


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything.

    >>> selector_matches(LabelSelector(match_labels={"edge": "true"}), {"edge": "true"})
    True
    """
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions:
        if not _requirement_holds(requirement, labels):
            return False
    return True


def _requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    operator = requirement.operator
    if operator == "In":
        return present and labels[requirement.key] in requirement.values
    if operator == "NotIn":
        return not present or labels[requirement.key] not in requirement.values
    return present if operator == "Exists" else not present


def selector_key(selector: LabelSelector) -> str:
    """A string equal for equal selectors (for memoizing matches)."""
    return selector.model_dump_json()


def hardware_from_labels(labels: Mapping[str, str], allocatable_memory: int) -> Hardware:
    """What Node labels say about the hardware, for nodes whose agent has not reported yet.

    >>> hw = hardware_from_labels({"kubernetes.io/arch": "arm64",
    ...                            "edgerollout.dev/accelerator": "npu.hailo.hailo-8"}, 4 << 30)
    >>> (hw.arch, hw.accelerators[0].accelerator_class, hw.accelerators[0].vendor)
    ('arm64', 'npu', 'hailo')
    """
    accelerators = [*_gpu_from_nvidia_labels(labels), *_accelerator_from_our_label(labels)]
    return Hardware(
        arch=labels.get(ARCH, ""),
        cpu_features=sorted(
            k.removeprefix(NFD_CPUID).lower()
            for k, v in labels.items()
            if k.startswith(NFD_CPUID) and v == "true"
        ),
        memory_bytes=allocatable_memory or None,  # a Node without allocatable memory: unknown
        memory_available_bytes=allocatable_memory,
        accelerators=accelerators,
        execution_providers=_providers(labels, accelerators),
        metered=labels.get(OUR_METERED) == "true",
        profile=LABELS_PROFILE,
    )


def _gpu_from_nvidia_labels(labels: Mapping[str, str]) -> list[Accelerator]:
    if labels.get(GPU_PRESENT) != "true":
        return []
    memory_mib = labels.get(GPU_MEMORY_MIB, "0")
    return [
        Accelerator(
            accelerator_class="gpu",
            vendor="nvidia",
            model=labels.get(GPU_PRODUCT, ""),
            memory_bytes=int(memory_mib) << 20 if memory_mib.isdigit() else 0,
            execution_provider="CUDAExecutionProvider",
        )
    ]


def _accelerator_from_our_label(labels: Mapping[str, str]) -> list[Accelerator]:
    value = labels.get(OUR_ACCELERATOR, "")
    parts = value.split(".", 2)
    if parts[0] not in ("npu", "gpu"):
        return []
    return [
        Accelerator(
            accelerator_class=parts[0],  # type: ignore[arg-type]  # checked just above
            vendor=parts[1] if len(parts) > 1 else "",
            model=parts[2] if len(parts) > 2 else "",
            execution_provider=ACCELERATOR_PROVIDER[parts[0]],
        )
    ]


def _providers(labels: Mapping[str, str], accelerators: list[Accelerator]) -> list[str]:
    named = [PROVIDER_NAMES.get(p, p) for p in labels.get(OUR_PROVIDERS, "").split(".") if p]
    found = [a.execution_provider for a in accelerators if a.execution_provider]
    ordered = [*named, *found, "CPUExecutionProvider"]
    return list(dict.fromkeys(ordered))
