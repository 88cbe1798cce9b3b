"""Hardware discovery: what this machine can run, as the `EdgeNode.status.hardware` model.

Reads /proc, /sys and /dev under a root (so tests use fake trees) and onnxruntime's providers,
then applies the optional hardware profile file, the only simulated thing. It must not decide
anything about models and must not talk to the cluster or the store.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_rollout.api.edgenode import Accelerator, Hardware

GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "armv8l": "arm",
    "i686": "386",
    "i386": "386",
    "riscv64": "riscv64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}
"""`uname -m` → the GOARCH name Kubernetes uses in `kubernetes.io/arch`."""

X86_FEATURES = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip
"""x86 flags that matter to onnxruntime kernels (vectors, int8 dot products, bf16/fp16, AMX)."""

ARM_FEATURES = {
    "asimd": "neon",
    "neon": "neon",
    "asimddp": "dotprod",
    "asimdhp": "fp16",
    "fphp": "fp16",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
    "sme": "sme",
}
"""Arm `Features` words → the names we report (`asimd` is what Linux calls NEON)."""

PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel", "0x5143": "qualcomm"}
"""PCI vendor ids of GPUs under /sys/class/drm."""

ACCEL_DRIVERS = {
    "intel_vpu": ("intel", "Intel NPU"),
    "amdxdna": ("amd", "AMD XDNA NPU"),
    "qaic": ("qualcomm", "Qualcomm Cloud AI 100"),
    "habanalabs": ("intel", "Habana Gaudi"),
    "ivpu": ("intel", "Intel NPU"),
    "rocket": ("rockchip", "Rockchip NPU"),
}
"""Drivers of the Linux accel subsystem (/sys/class/accel) → (vendor, model)."""

EXECUTION_PROVIDERS = {
    ("gpu", "nvidia"): "CUDAExecutionProvider",
    ("gpu", "amd"): "MIGraphXExecutionProvider",
    ("gpu", "intel"): "OpenVINOExecutionProvider",
    ("npu", "intel"): "OpenVINOExecutionProvider",
    ("npu", "amd"): "VitisAIExecutionProvider",
    ("npu", "qualcomm"): "QNNExecutionProvider",
    ("npu", "rockchip"): "RknpuExecutionProvider",
    ("gpu", "qualcomm"): "QNNExecutionProvider",
}
"""The onnxruntime execution provider that drives each (class, vendor); absent means none."""

LIST_FIELDS = ("accelerators", "execution_providers", "cpu_features")


@dataclass(frozen=True)
class HostPaths:
    """Where the machine's pseudo file systems are; tests point `root` at a fake tree."""

    root: Path = Path("/")

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def sys(self) -> Path:
        return self.root / "sys"

    @property
    def dev(self) -> Path:
        return self.root / "dev"


class ProfileError(ValueError):
    """The hardware profile file cannot be used; the message says what to fix."""


# --- pure parsing -------------------------------------------------------------------------


def go_arch(machine: str) -> str:
    """The Go architecture name for a `uname -m` value; unknown ones pass through lower-cased."""
    return GO_ARCH.get(machine.lower(), machine.lower())


def parse_cpu_cores(cpuinfo: str) -> int:
    """Logical cores listed in /proc/cpuinfo (one `processor` line each)."""
    return sum(1 for line in cpuinfo.splitlines() if re.match(r"processor\s*:", line))


def parse_cpu_features(cpuinfo: str) -> list[str]:
    """Inference-relevant ISA features from the first `flags` (x86) or `Features` (Arm) line."""
    words: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            words = set(value.split())
            break
    found = {f for f in X86_FEATURES if f in words}
    found |= {name for word, name in ARM_FEATURES.items() if word in words}
    return sorted(found)


def parse_meminfo(meminfo: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes; MemAvailable falls back to MemFree."""
    values: dict[str, int] = {}
    for line in meminfo.splitlines():
        match = re.match(r"(\w+):\s+(\d+)(?:\s+kB)?", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    total = values.get("MemTotal", 0)
    return total, values.get("MemAvailable", values.get("MemFree", 0))


def hottest_celsius(millidegrees: Iterable[str]) -> float | None:
    """The hottest reading of thermal zones (`temp` files hold millidegrees Celsius)."""
    readings = [int(t.strip()) / 1000.0 for t in millidegrees if t.strip().lstrip("-").isdigit()]
    return max(readings) if readings else None


def provider_for(accelerator_class: str, vendor: str) -> str:
    """The execution provider that drives an accelerator of this class and vendor, or ""."""
    return EXECUTION_PROVIDERS.get((accelerator_class, vendor), "")


def make_accelerator(cls: str, vendor: str, model: str, memory: int = 0) -> Accelerator:
    """One accelerator in the taxonomy, with its execution provider filled in."""
    return Accelerator.model_validate(
        {
            "class": cls,
            "vendor": vendor,
            "model": model,
            "memoryBytes": memory,
            "executionProvider": provider_for(cls, vendor),
        }
    )


# --- reading the machine ------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _glob(directory: Path, pattern: str) -> list[Path]:
    try:
        return sorted(directory.glob(pattern))
    except OSError:
        return []


def nvidia_gpus(paths: HostPaths) -> list[Accelerator]:
    """NVIDIA GPUs: /proc/driver/nvidia/gpus/*/information, else the /dev/nvidiaN nodes."""
    infos = _glob(paths.proc / "driver" / "nvidia" / "gpus", "*/information")
    models = [_info_field(_read(p), "Model") for p in infos]
    if not models:
        models = ["" for p in _glob(paths.dev, "nvidia*") if re.fullmatch(r"nvidia\d+", p.name)]
    return [make_accelerator("gpu", "nvidia", m) for m in models]


def _info_field(text: str, key: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return ""


def drm_gpus(paths: HostPaths, skip_vendors: set[str]) -> list[Accelerator]:
    """GPUs under /sys/class/drm/cardN (not connectors), by PCI vendor id."""
    found = []
    for card in _glob(paths.sys / "class" / "drm", "card*"):
        if not re.fullmatch(r"card\d+", card.name):
            continue
        vendor = PCI_VENDORS.get(_read(card / "device" / "vendor").strip(), "")
        if not vendor or vendor in skip_vendors:
            continue
        vram = _read(card / "device" / "mem_info_vram_total").strip()
        device = _read(card / "device" / "device").strip()
        memory = int(vram) if vram.isdigit() else 0
        found.append(make_accelerator("gpu", vendor, f"pci {device}".strip(), memory))
    return found


def accel_npus(paths: HostPaths) -> list[Accelerator]:
    """NPUs of the Linux accel subsystem (/sys/class/accel/accelN, /dev/accel/accelN)."""
    found = []
    for node in _glob(paths.sys / "class" / "accel", "accel*"):
        driver = os.path.basename(os.path.realpath(node / "device" / "driver"))
        vendor, model = ACCEL_DRIVERS.get(driver, ("", driver))
        found.append(make_accelerator("npu", vendor, model))
    if not found:
        found = [make_accelerator("npu", "", "") for _ in _glob(paths.dev / "accel", "accel*")]
    return found


DEVICE_NPUS = (
    ("hailo*", "hailo", "Hailo-8"),
    ("rknpu*", "rockchip", "Rockchip NPU"),
    ("apex_*", "google", "Coral Edge TPU"),
)
"""Vendor device nodes in /dev that are NPUs: (glob, vendor, model)."""


def device_npus(paths: HostPaths) -> list[Accelerator]:
    """NPUs with vendor device nodes in /dev (Hailo, Rockchip, Coral)."""
    found = []
    for pattern, vendor, model in DEVICE_NPUS:
        found += [make_accelerator("npu", vendor, model) for _ in _glob(paths.dev, pattern)]
    return found


def discover_accelerators(paths: HostPaths) -> list[Accelerator]:
    """Every GPU and NPU found, NVIDIA first, then DRM GPUs, accel NPUs and vendor NPUs."""
    nvidia = nvidia_gpus(paths)
    skip = {"nvidia"} if nvidia else set()
    return nvidia + drm_gpus(paths, skip) + accel_npus(paths) + device_npus(paths)


def disk_free(directory: Path) -> int:
    """Free bytes for an unprivileged writer on the file system holding `directory`."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 0


def local_time_zone(paths: HostPaths) -> str:
    """The IANA zone: $TZ, /etc/timezone, or the /etc/localtime link; "" when unknown."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz == "UTC" or "/" in tz:
        return tz
    named = _read(paths.root / "etc" / "timezone").strip()
    if named:
        return named
    target = os.path.realpath(paths.root / "etc" / "localtime")
    _, marker, zone = target.partition("zoneinfo/")
    return zone if marker else ""


def available_providers() -> list[str]:
    """onnxruntime's available execution providers, best first (empty without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def discover(
    data_dir: Path,
    paths: HostPaths | None = None,
    providers: list[str] | None = None,
    machine: str | None = None,
) -> Hardware:
    """What this machine has, as found (no profile applied)."""
    paths = paths or HostPaths()
    cpuinfo = _read(paths.proc / "cpuinfo")
    total, available = parse_meminfo(_read(paths.proc / "meminfo"))
    zones = _glob(paths.sys / "class" / "thermal", "thermal_zone*/temp")
    return Hardware(
        arch=go_arch(machine or platform.machine()),
        cpu_cores=parse_cpu_cores(cpuinfo) or os.cpu_count() or 0,
        cpu_features=parse_cpu_features(cpuinfo),
        memory_bytes=total or None,  # no MemTotal: unknown (absent), not 0
        memory_available_bytes=available,
        disk_free_bytes=disk_free(data_dir),
        accelerators=discover_accelerators(paths),
        execution_providers=available_providers() if providers is None else providers,
        temperature_celsius=hottest_celsius(_read(z) for z in zones),
        time_zone=local_time_zone(paths),
    )


# --- the hardware profile -----------------------------------------------------------------


def load_profile(path: Path) -> dict[str, Any]:
    """The profile file's mapping (YAML); raises ProfileError saying what to fix."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"hardware profile {path}: cannot read it as YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"hardware profile {path}: must be a mapping of Hardware fields")
    return data


def apply_profile(found: Hardware, profile: dict[str, Any], name: str) -> Hardware:
    """`found` with the profile applied: scalars replace, lists extend (profile entries first)
    unless `replace: true`. Field names are the camelCase ones of `status.hardware`."""
    profile = dict(profile)
    replace = bool(profile.pop("replace", False))
    profile.pop("name", None)
    try:
        overlay = Hardware.model_validate(profile)
    except ValueError as exc:
        raise ProfileError(f"hardware profile {name}: {exc}") from exc
    given = overlay.model_dump(exclude_unset=True, by_alias=False)
    merged = found.model_dump(by_alias=False)
    for key, value in given.items():
        if key in LIST_FIELDS and not replace:
            merged[key] = _merge_list(value, merged[key])
        else:
            merged[key] = value
    merged["profile"] = name
    return Hardware.model_validate(merged)


def _merge_list(first: list[Any], then: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in [*first, *then]:
        if item not in out:
            out.append(item)
    return out


def discover_with_profile(
    data_dir: Path, profile_path: Path | None, paths: HostPaths | None = None
) -> Hardware:
    """Discovery plus the hardware profile file, if one is given."""
    found = discover(data_dir, paths)
    if profile_path is None:
        return found
    profile = load_profile(profile_path)
    name = str(profile.get("name") or profile_path.stem)
    return apply_profile(found, profile, name)
