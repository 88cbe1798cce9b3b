"""The Python parts of the images: the project's wheel, its dependencies per extra, the project.

pip runs here with this machine's own settings (`pip install --target`), never in the image; the
console scripts get Debian's `#!/usr/bin/python3` and every module is compiled with unchecked
hashes under its in-image path. Dependencies are cached per extra and requirement list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge_rollout.testing import rootfs

SITE_PACKAGES = f"/usr/local/lib/python{rootfs.PYTHON_VERSION}/dist-packages"
"""On the path of Debian's python3 outside a venv; apt never writes there."""
SCRIPTS = "/usr/local/bin"
SHEBANG = b"#!/usr/bin/python3"
SOURCES = ("pyproject.toml", "README.md", "operator", "edge-agent")
"""What the wheel is built from (pyproject's package roots and readme)."""
RECIPE = 1
"""Bump when ensure_dependencies changes what it installs: the cached dependencies are rebuilt."""
SKIPPED = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc", "build", "dist")


@dataclass(frozen=True)
class Wheel:
    path: Path
    digest: str
    """sha256 of the wheel's file names and contents (not of the zip, which holds mtimes)."""


@dataclass(frozen=True)
class Installed:
    """Files to put under SITE_PACKAGES (`lib`) and SCRIPTS (`bin`)."""

    key: str
    lib: Path
    bin: Path
    distributions: tuple[str, ...]

    def fingerprint(self) -> str:
        """The key and the versions pip resolved (a rebuild may resolve newer ones)."""
        return f"{self.key}-{','.join(self.distributions)}"


def build_wheel(repo: Path, work: Path) -> Wheel:
    """`pip wheel --no-deps` of a clean copy of the sources (no stale build/ or egg-info),
    cached by the sources' digest."""
    cached = rootfs.cache_root() / f"wheel-{sources_digest(repo)[:16]}"
    if not any(cached.glob("*.whl")):
        source = work / "source"
        for name in SOURCES:
            if (repo / name).is_dir():
                shutil.copytree(repo / name, source / name, ignore=SKIPPED)
            else:
                source.mkdir(parents=True, exist_ok=True)
                shutil.copy2(repo / name, source / name)
        pip("wheel", "--no-deps", "--wheel-dir", str(work / "wheel"), str(source))
        partial = cached.with_name(cached.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(work / "wheel", partial)
        shutil.rmtree(cached, ignore_errors=True)
        partial.replace(cached)
        rootfs.prune(cached)
    (path,) = sorted(cached.glob("*.whl"))
    return Wheel(path, wheel_digest(path))


def sources_digest(repo: Path) -> str:
    """sha256 of the names and contents of what the wheel is built from (SKIPPED left out)."""
    digest = hashlib.sha256(f"recipe {RECIPE}".encode())
    for name in SOURCES:
        for path in sorted(_source_files(repo / name)):
            digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _source_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not SKIPPED(root, [d])]
        found += [Path(root, f) for f in files if not SKIPPED(root, [f])]
    return found


def wheel_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as wheel:
        for name in sorted(wheel.namelist()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(wheel.read(name)).digest())
    return digest.hexdigest()


def wheel_metadata(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(Requires-Dist lines, top-level names, console scripts) of a wheel."""
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    scripts_section = entry_points.partition("[console_scripts]")[2].partition("[")[0]
    scripts = [line.split("=")[0].strip() for line in scripts_section.splitlines() if "=" in line]
    return requires, sorted({n.split("/")[0] for n in names}), scripts


def dependencies_key(wheel: Path, extra: str, architecture: str) -> str:
    requires, _, _ = wheel_metadata(wheel)
    recipe = {
        "extra": extra,
        "requires": requires,
        "python": rootfs.PYTHON_VERSION,
        "architecture": architecture,
        "recipe": RECIPE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def ensure_dependencies(wheel: Path, extra: str, architecture: str) -> Installed:
    """The wheel's dependencies for one extra, without the project itself (cached)."""
    key = dependencies_key(wheel, extra, architecture)
    final = rootfs.cache_root() / f"deps-{extra}-{key}"
    if not (final / "info.json").is_file():
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        pip_target(partial, f"{wheel}[{extra}]")
        _, top_level, scripts = wheel_metadata(wheel)
        for name in top_level:
            shutil.rmtree(partial / "lib" / name)
        for script in scripts:
            (partial / "bin" / script).unlink(missing_ok=True)
        finish(partial)
        shutil.rmtree(final, ignore_errors=True)
        partial.replace(final)
        rootfs.prune(final)
    return installed(final, key)


def install_project(wheel: Wheel, work: Path) -> Installed:
    """The project alone (`--no-deps`), without direct_url.json (it names the build's temp path)."""
    target = work / f"project-{wheel.digest[:16]}"
    if (target / "info.json").is_file():
        return installed(target, wheel.digest[:16])
    pip_target(target, str(wheel.path))
    for direct_url in (target / "lib").glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
        record = direct_url.with_name("RECORD")
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if "/direct_url.json," not in line))
    finish(target)
    return installed(target, wheel.digest[:16])


def pip_target(target: Path, requirement: str) -> None:
    pip(
        "install",
        "--target",
        str(target / "lib"),
        "--no-compile",
        "--no-warn-script-location",
        requirement,
    )
    if (target / "lib" / "bin").is_dir():
        (target / "lib" / "bin").replace(target / "bin")
    (target / "bin").mkdir(exist_ok=True)


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def finish(target: Path) -> None:
    """Shebangs for Debian's python3, byte code for the in-image paths, the distribution list."""
    for script in sorted((target / "bin").iterdir()):
        rewrite_shebang(script)
    compiler = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
    subprocess.run(
        [
            compiler,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            SITE_PACKAGES,
            str(target / "lib"),
        ],
        check=False,
        capture_output=True,
    )
    names = sorted(p.name.removesuffix(".dist-info") for p in (target / "lib").glob("*.dist-info"))
    (target / "info.json").write_text(json.dumps({"distributions": names}, indent=1))


def rewrite_shebang(script: Path) -> None:
    content = script.read_bytes()
    first, newline, rest = content.partition(b"\n")
    if not first.startswith(b"#!") or b"python" not in first:
        raise RuntimeError(
            f"{script}: pip wrote {first[:80]!r}, not a `#!.../python` line; "
            "run the build from a venv whose path is short and has no spaces"
        )
    script.write_bytes(SHEBANG + newline + rest)


def installed(path: Path, key: str) -> Installed:
    names = json.loads((path / "info.json").read_text())["distributions"]
    return Installed(key, path / "lib", path / "bin", tuple(names))


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="edge-rollout-images-")
