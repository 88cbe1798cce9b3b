"""Each extra alone in a fresh venv starts its own console scripts (the images install one each).

Builds the wheel once (`pip wheel --no-deps`, the machine's own pip settings), installs
`wheel[extra]` into a venv per extra, cached under ~/.cache/edge-rollout/extras/ by what the extra
installs (the wheel itself is reinstalled when its content hash changes: seconds, not minutes),
and runs every entry point of the extra: `--help`, and a real start where one is possible. Each
venv must lack the other extras' packages: no other extra's package makes a command work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from edge_rollout.testing.controlplane import ControlPlane, stop_process
from tests.integration import store_fixtures
from tests.support import REPO

CACHE = Path.home() / ".cache" / "edge-rollout" / "extras"
SOURCES = ("pyproject.toml", "README.md", "operator", "edge-agent")
ABSENT = {
    "operator": ("onnxruntime", "onnx", "numpy"),
    "agent": ("kopf", "onnx", "rich"),
    "publish": ("kopf", "kubernetes", "prometheus_client"),
}
"""Packages of other extras that must not be installed with this one."""
pytestmark = pytest.mark.timeout(900)  # a cold cache installs onnxruntime, onnx, kubernetes...
HELP = {
    "operator": [
        ["edge-rollout", "--help"],
        ["edge-rollout", "operator", "--help"],
        ["edge-rollout", "plan", "--help"],
        ["edge-rollout-operator", "--help"],
        ["kubectl-edge_rollout", "--help"],
        ["kubectl-edge_rollout", "status", "--help"],
    ],
    "agent": [["edge-rollout-agent", "--help"]],
    "publish": [
        ["edge-rollout", "--help"],
        ["edge-rollout", "publish", "--help"],
        ["edge-rollout", "keygen", "--help"],
        ["edge-rollout", "store", "--help"],
        ["edge-rollout", "store", "verify", "--help"],
        ["edge-rollout", "diff", "--help"],
    ],
}


def _clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment (pip settings included) without this checkout's Python path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(
    argv: list[str], cwd: Path, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def content_hash(wheel: Path) -> str:
    """sha256 over the wheel's member names and bytes (zip timestamps differ between builds)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name))
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the shared tree stays untouched)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root),
                   str(source)], cwd=root)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (built,) = root.glob("edge_rollout-*.whl")
    return built


@pytest.fixture(scope="module")
def venvs(wheel: Path) -> dict[str, Path]:
    """extra -> a venv holding the wheel with that extra alone."""
    return {extra: _venv(wheel, extra) for extra in ABSENT}


def requirements(wheel: Path, extra: str) -> list[str]:
    """The wheel's Requires-Dist for `extra`: the base ones and the extra's own."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    found = [line.partition(":")[2].strip() for line in lines if line.startswith("Requires-Dist:")]
    return sorted(r for r in found if ";" not in r or f'extra == "{extra}"' in r)


def _venv(wheel: Path, extra: str) -> Path:
    """The venv for `extra`, cached by what it installs (Python, the extra's requirements); the
    project itself is reinstalled (`--no-deps`) whenever the wheel's content changes."""
    key = hashlib.sha256(json.dumps([sys.version, requirements(wheel, extra)]).encode())
    path = CACHE / f"{extra}-{key.hexdigest()[:12]}"
    for old in CACHE.glob(f"{extra}-*"):
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    installed, wanted = path / ".wheel", content_hash(wheel)
    if not installed.exists():
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        _pip(path, [sys.executable, "-m", "venv", str(path)])
        _pip(
            path, [str(path / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[{extra}]"]
        )
    elif installed.read_text() != wanted:
        _pip(path, [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--force-reinstall", str(wheel)])  # fmt: skip
    installed.write_text(wanted)
    return path


def _pip(path: Path, argv: list[str]) -> None:
    result = _run(argv, cwd=path.parent)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stderr}"


def importable(venv: Path, modules: tuple[str, ...], cwd: Path) -> list[str]:
    """The `modules` the venv's Python can import."""
    code = "import importlib.util as u, json, sys; print(json.dumps([m for m in sys.argv[1:] " \
        "if u.find_spec(m)]))"  # fmt: skip
    result = _run([str(venv / "bin" / "python"), "-c", code, *modules], cwd=cwd)
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout)
    return found


def test_the_wheel_content_hash_ignores_zip_timestamps(wheel: Path, tmp_path: Path) -> None:
    copy = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w") as target:
        for info in source.infolist():
            info.date_time = (2000, 1, 1, 0, 0, 0)
            target.writestr(info, source.read(info.filename))
    assert content_hash(copy) == content_hash(wheel)


@pytest.mark.parametrize("extra", sorted(ABSENT))
def test_each_extra_lacks_the_other_extras_packages(
    venvs: dict[str, Path], extra: str, tmp_path: Path
) -> None:
    assert importable(venvs[extra], ABSENT[extra], tmp_path) == []
    assert importable(venvs[extra], ("edge_rollout", "edge_rollout_agent"), tmp_path) == [
        "edge_rollout",
        "edge_rollout_agent",
    ]


@pytest.mark.parametrize(
    ("extra", "argv"),
    [pytest.param(e, a, id=f"{e}:{' '.join(a)}") for e, argvs in HELP.items() for a in argvs],
)
def test_every_entry_point_of_an_extra_prints_its_help(
    venvs: dict[str, Path], extra: str, argv: list[str], tmp_path: Path
) -> None:
    result = _run([str(venvs[extra] / "bin" / argv[0]), *argv[1:]], cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout
    assert result.stderr == ""


def test_publish_extra_makes_a_signing_key(venvs: dict[str, Path], tmp_path: Path) -> None:
    key = tmp_path / "keys" / "release.key"
    result = _run([str(venvs["publish"] / "bin" / "edge-rollout"), "keygen", str(key)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600
    assert Path(f"{key}.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "base64 form: " in result.stdout


def test_publish_extra_publishes_a_release(venvs: dict[str, Path], tmp_path: Path) -> None:
    """The whole publish pipeline (onnx, onnxruntime, numpy, signing) with [publish] alone."""
    bin_dir = venvs["publish"] / "bin"
    key, store = tmp_path / "release.key", tmp_path / "store"
    assert _run([str(bin_dir / "edge-rollout"), "keygen", str(key)], tmp_path).returncode == 0
    model = store_fixtures.build_mlp(tmp_path / "mlp.onnx")
    argv = [str(bin_dir / "edge-rollout"), "publish", str(model), "--name", "mlp", "--version",
            "1.0.0", "--store", str(store), "--key", str(key), "--runs", "3"]  # fmt: skip
    result = _run(argv, tmp_path)
    assert result.returncode == 0, result.stderr
    index = json.loads((store / "models" / "mlp" / "1.0.0" / "index.json").read_text())
    assert {v["name"] for v in index["variants"]} == {"fp32", "fp16", "int8"}
    assert "kind: ModelDeployment" in result.stdout
    verify = [str(bin_dir / "edge-rollout"), "store", "verify", str(store), "--public-key",
              f"{key}.pub"]  # fmt: skip
    result = _run(verify, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 release(s) checked, 0 problem(s)" in result.stdout


def test_a_command_of_another_extra_names_the_extra_to_install(
    venvs: dict[str, Path], tmp_path: Path
) -> None:
    result = _run([str(venvs["publish"] / "bin" / "edge-rollout"), "operator"], tmp_path)
    assert result.returncode == 1
    assert "needs the Python package" in result.stderr
    assert "pip install 'edge-rollout[operator]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_agent_extra_refuses_an_unreadable_kubeconfig_in_words(
    venvs: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    argv = [str(venvs["agent"] / "bin" / "edge-rollout-agent"), "--node", "edge-1",
            "--kubeconfig", str(missing), "--data-dir", str(tmp_path / "data"),
            "--metrics-port", "0"]  # fmt: skip
    result = _run(argv, tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"cannot load {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_extra_alone_runs_the_operator(
    venvs: dict[str, Path], control_plane: ControlPlane, crds_installed: None, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    argv = [str(venvs["operator"] / "bin" / "edge-rollout"), "operator", "--standalone"]
    env = _clean_env(KUBECONFIG=str(control_plane.kubeconfig))
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "operator running" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
    finally:
        stop_process(proc)
    text = log.read_text()
    assert "operator running: watching ModelDeployments in all namespaces (standalone)" in text
    assert "Traceback" not in text
    plugin = [str(venvs["operator"] / "bin" / "kubectl-edge_rollout"), "nodes", "-o", "json"]
    result = _run(plugin, tmp_path, KUBECONFIG=str(control_plane.kubeconfig))
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict | list)


def test_agent_extra_alone_reports_its_node(
    venvs: dict[str, Path], control_plane: ControlPlane, crds_installed: None, tmp_path: Path
) -> None:
    """The agent with [agent] alone: its EdgeNode appears with the hardware it discovered
    (onnxruntime's execution providers among it)."""
    node = f"extras-{uuid.uuid4().hex[:6]}"
    argv = [str(venvs["agent"] / "bin" / "edge-rollout-agent"), "--node", node,
            "--kubeconfig", str(control_plane.kubeconfig), "--data-dir", str(tmp_path / "data"),
            "--metrics-port", "0", "--heartbeat", "2"]  # fmt: skip
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=_clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    kubectl = [str(control_plane.kubectl), f"--kubeconfig={control_plane.kubeconfig}"]
    try:
        deadline, hardware = time.monotonic() + 60, None
        while not hardware:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
            got = _run([*kubectl, "get", "edgenode", node, "-o", "json"], tmp_path, timeout=30)
            status = json.loads(got.stdout).get("status", {}) if got.returncode == 0 else {}
            hardware = status.get("hardware")
    finally:
        stop_process(proc)
        _run([*kubectl, "delete", "edgenode", node, "--ignore-not-found"], tmp_path, timeout=60)
    assert "CPUExecutionProvider" in hardware["executionProviders"]
    assert "Traceback" not in log.read_text()
