"""The simulated hardware of the demo and the test clusters: agent hardware-profile files.

The one simulated part of the project (docs/agent.md): what an NPU or GPU box reports. The demo
runs all six boxes; a test cluster's nodes take the NPU, GPU and CPU profile in turn.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3


def _gpu(model: str) -> dict[str, Any]:
    return {
        "class": "gpu",
        "vendor": "nvidia",
        "model": model,
        "executionProvider": "CUDAExecutionProvider",
    }


DEMO_PROFILES: dict[str, dict[str, Any]] = {
    "edge-npu-1": {
        "name": "hailo-box",
        "memoryBytes": 4 * GIB,
        "executionProviders": ["HailoExecutionProvider"],
        "accelerators": [{"class": "npu", "vendor": "hailo", "model": "Hailo-8"}],
    },
    "edge-npu-2": {
        "name": "rockchip-board",
        "memoryBytes": 2 * GIB,
        "arch": "arm64",
        "executionProviders": ["RknpuExecutionProvider"],
        "accelerators": [{"class": "npu", "vendor": "rockchip", "model": "RK3588"}],
    },
    "edge-gpu-1": {
        "name": "jetson-orin",
        "memoryBytes": 16 * GIB,
        "executionProviders": ["CUDAExecutionProvider"],
        "accelerators": [_gpu("Orin")],
    },
    "edge-gpu-2": {
        "name": "t4-gateway",
        "memoryBytes": 8 * GIB,
        "executionProviders": ["CUDAExecutionProvider"],
        "accelerators": [_gpu("Tesla T4")],
    },
    "edge-cpu-1": {"name": "x86-kiosk", "memoryBytes": 1 * GIB},
    "edge-cpu-2": {"name": "arm-camera", "memoryBytes": 2 * GIB, "arch": "arm64"},
}
"""The demo's six nodes: 2 NPU, 2 GPU, 2 CPU boxes, 1 to 16 GiB."""

CLUSTER_PROFILES: dict[str, dict[str, Any]] = {
    "npu": DEMO_PROFILES["edge-npu-1"],
    "gpu": DEMO_PROFILES["edge-gpu-1"],
    "cpu": {"name": "x86-box", "memoryBytes": 2 * GIB},
}
"""A test cluster node's hardware profile per its `edgerollout.dev/profile` label."""
