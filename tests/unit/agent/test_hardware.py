"""Hardware discovery against fake /proc, /sys and /dev trees, and the hardware profile file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_rollout_agent import hardware
from edge_rollout_agent.hardware import HostPaths

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f avx512_vnni amx_int8 hypervisor
processor\t: 1
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f avx512_vnni amx_int8 hypervisor
"""

ARM_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp i8mm
processor\t: 1
processor\t: 2
processor\t: 3
"""

MEMINFO = """MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    6000000 kB
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    write(base / "proc" / "cpuinfo", X86_CPUINFO)
    write(base / "proc" / "meminfo", MEMINFO)
    return base


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        pytest.param("x86_64", "amd64", id="x86_64"),
        pytest.param("aarch64", "arm64", id="aarch64"),
        pytest.param("armv7l", "arm", id="armv7"),
        pytest.param("mips", "mips", id="unknown-passes-through"),
    ],
)
def test_go_arch_names(machine: str, expected: str) -> None:
    assert hardware.go_arch(machine) == expected


def test_x86_features_keep_only_inference_relevant_flags() -> None:
    features = hardware.parse_cpu_features(X86_CPUINFO)
    assert features == sorted(
        ["sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
    )


def test_arm_features_are_named_as_reported() -> None:
    assert hardware.parse_cpu_features(ARM_CPUINFO) == ["dotprod", "fp16", "i8mm", "neon"]
    assert hardware.parse_cpu_cores(ARM_CPUINFO) == 4


def test_meminfo_falls_back_to_memfree() -> None:
    assert hardware.parse_meminfo("MemTotal: 10 kB\nMemFree: 4 kB\n") == (10240, 4096)


def test_hottest_zone_wins_and_garbage_is_ignored() -> None:
    assert hardware.hottest_celsius(["41000\n", "67500", "junk", ""]) == 67.5
    assert hardware.hottest_celsius([]) is None


def test_discover_reads_the_fake_tree(root: Path, tmp_path: Path) -> None:
    write(root / "sys" / "class" / "thermal" / "thermal_zone0" / "temp", "45000\n")
    write(root / "sys" / "class" / "thermal" / "thermal_zone1" / "temp", "71250\n")
    hw = hardware.discover(
        tmp_path, HostPaths(root), providers=["CPUExecutionProvider"], machine="x86_64"
    )
    assert hw.arch == "amd64"
    assert hw.cpu_cores == 2
    assert "avx512_vnni" in hw.cpu_features
    assert (hw.memory_bytes, hw.memory_available_bytes) == (8000000 * 1024, 6000000 * 1024)
    assert hw.disk_free_bytes > 0
    assert hw.temperature_celsius == 71.25
    assert hw.accelerators == []
    assert hw.execution_providers == ["CPUExecutionProvider"]


def test_nvidia_gpu_from_proc_driver(root: Path, tmp_path: Path) -> None:
    info = root / "proc" / "driver" / "nvidia" / "gpus" / "0000:01:00.0" / "information"
    write(info, "Model: \t\t NVIDIA RTX A2000\nIRQ: 16\n")
    write(root / "dev" / "nvidia0", "")
    card = root / "sys" / "class" / "drm" / "card0" / "device"
    write(card / "vendor", "0x10de\n")  # the same GPU seen through DRM is not counted twice
    (hw,) = hardware.discover(tmp_path, HostPaths(root), providers=[]).accelerators
    assert (hw.accelerator_class, hw.vendor, hw.model) == ("gpu", "nvidia", "NVIDIA RTX A2000")
    assert hw.execution_provider == "CUDAExecutionProvider"


def test_amd_gpu_from_drm_with_vram(root: Path, tmp_path: Path) -> None:
    card = root / "sys" / "class" / "drm" / "card1" / "device"
    write(card / "vendor", "0x1002\n")
    write(card / "device", "0x73bf\n")
    write(card / "mem_info_vram_total", "17163091968\n")
    write(root / "sys" / "class" / "drm" / "card1-HDMI-A-1" / "status", "connected")
    (gpu,) = hardware.discover(tmp_path, HostPaths(root), providers=[]).accelerators
    assert (gpu.accelerator_class, gpu.vendor, gpu.memory_bytes) == ("gpu", "amd", 17163091968)


def test_accel_subsystem_npu_named_by_driver(root: Path, tmp_path: Path) -> None:
    driver = root / "sys" / "bus" / "pci" / "drivers" / "intel_vpu"
    driver.mkdir(parents=True)
    device = root / "sys" / "class" / "accel" / "accel0" / "device"
    device.mkdir(parents=True)
    os.symlink(driver, device / "driver")
    (npu,) = hardware.discover(tmp_path, HostPaths(root), providers=[]).accelerators
    assert (npu.accelerator_class, npu.vendor, npu.model) == ("npu", "intel", "Intel NPU")
    assert npu.execution_provider == "OpenVINOExecutionProvider"


@pytest.mark.parametrize(
    ("device", "vendor"),
    [
        pytest.param("hailo0", "hailo", id="hailo"),
        pytest.param("rknpu", "rockchip", id="rockchip"),
        pytest.param("apex_0", "google", id="coral"),
    ],
)
def test_vendor_device_nodes_are_npus(root: Path, tmp_path: Path, device: str, vendor: str) -> None:
    write(root / "dev" / device, "")
    (npu,) = hardware.discover(tmp_path, HostPaths(root), providers=[]).accelerators
    assert (npu.accelerator_class, npu.vendor) == ("npu", vendor)


def test_missing_tree_gives_an_empty_but_valid_profile(tmp_path: Path) -> None:
    hw = hardware.discover(tmp_path, HostPaths(tmp_path / "nothing"), providers=[])
    assert hw.memory_bytes is None  # no meminfo: unknown (absent), not 0
    assert hw.cpu_cores >= 1  # falls back to os.cpu_count()
    assert hw.temperature_celsius is None


def test_profile_extends_lists_and_replaces_scalars(root: Path, tmp_path: Path) -> None:
    profile = tmp_path / "hailo-node.yaml"
    profile.write_text(
        "accelerators:\n"
        "  - {class: npu, vendor: hailo, model: Hailo-8,"
        " executionProvider: HailoExecutionProvider}\n"
        "executionProviders: [HailoExecutionProvider]\n"
        "memoryBytes: 4294967296\n"
        "metered: true\n"
        "timeZone: Europe/Berlin\n"
    )
    hw = hardware.discover_with_profile(tmp_path, profile, HostPaths(root))
    assert hw.profile == "hailo-node"
    assert hw.accelerators[0].vendor == "hailo"
    assert hw.execution_providers[0] == "HailoExecutionProvider"
    assert "CPUExecutionProvider" in hw.execution_providers
    assert hw.memory_bytes == 4294967296
    assert hw.metered is True
    assert hw.time_zone == "Europe/Berlin"
    assert hw.cpu_cores == 2  # not in the profile: as found


def test_profile_replace_mode_drops_what_was_found(root: Path, tmp_path: Path) -> None:
    found = hardware.discover(tmp_path, HostPaths(root), providers=["CPUExecutionProvider"])
    hw = hardware.apply_profile(
        found, {"replace": True, "cpuFeatures": ["neon"], "name": "pi"}, "pi"
    )
    assert hw.cpu_features == ["neon"]
    assert hw.profile == "pi"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("- a\n- b\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("cpuCores: many\n", "cpuCores", id="bad-type"),
        pytest.param("accelerators: [{class: tpu}]\n", "class", id="bad-class"),
        pytest.param("a: [\n", "YAML", id="bad-yaml"),
    ],
)
def test_bad_profiles_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    with pytest.raises(hardware.ProfileError, match=message):
        hardware.discover_with_profile(tmp_path, profile, HostPaths(tmp_path))
