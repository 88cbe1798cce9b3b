"""`make images`: the operator and agent images as OCI archives, without a container engine.

Three layers each: the Debian base (rootfs.py), the extra's dependencies and the project
(pythonlayers.py), written reproducibly by ocilayout.py. Names and tags are the chart's defaults,
so `helm install` finds them once imported. An archive is rebuilt only when its inputs change.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from edge_rollout.testing import ocilayout, pythonlayers, rootfs

REPO = Path(__file__).resolve().parents[3]
CHART = Path("charts", "edge-rollout")
USER = f"{rootfs.USER_ID}:{rootfs.USER_ID}"
ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
)
DATA_DIR = "/var/lib/edge-rollout"
Log = Callable[[str], None]


@dataclass(frozen=True)
class ImageSpec:
    """One image: its chart values key, extra, command, and what must (not) be installed."""

    name: str
    extra: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    ports: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    data_dir: str | None = None


SPECS = (
    ImageSpec(
        name="operator",
        extra="operator",
        entrypoint=("edge-rollout",),
        cmd=("operator", "--liveness=http://0.0.0.0:8080/healthz"),
        ports=("8080/tcp", "8081/tcp"),
        forbidden=("onnxruntime", "onnx", "numpy"),
    ),
    ImageSpec(
        name="agent",
        extra="agent",
        entrypoint=("edge-rollout-agent",),
        cmd=(),
        ports=("9464/tcp",),
        required=("onnxruntime", "numpy"),
        data_dir=DATA_DIR,
    ),
)


@dataclass(frozen=True)
class ImageArchive:
    """A built archive: `ctr -n k8s.io images import <path>` makes `ref` available."""

    ref: str
    path: Path
    digest: str
    """The manifest digest (what `ctr images ls` and the kubelet show)."""
    compressed_size: int
    """Manifest, config and gzip layers: what a registry stores and a pull fetches."""
    unpacked_size: int
    """The layers' uncompressed tars: about what the image takes on a node's disk."""


def chart_ref(repo: Path, name: str) -> str:
    """`<repository>:<tag>` that the chart's defaults resolve to (tag = appVersion)."""
    chart = repo / CHART
    values = yaml.safe_load((chart / "values.yaml").read_text())[name]["image"]
    tag = values["tag"] or yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    return f"{values['repository']}:{tag}"


@dataclass(frozen=True)
class Build:
    """What every image of one `build_images` call shares."""

    out_dir: Path
    repo: Path
    base: rootfs.BaseRootfs
    wheel: pythonlayers.Wheel
    work: Path
    reuse_layers: bool
    say: Log


def build_images(
    out_dir: Path, *, repo: Path = REPO, reuse_layers: bool = True, log: Log | None = None
) -> dict[str, ImageArchive]:
    """Build (or keep) `<out_dir>/<name>.oci.tar` for every image; keys are the spec names.

    `repo` is the source tree (wheel sources and chart). reuse_layers=False writes every layer
    again instead of taking the cached base and dependency layers (the base rootfs and the
    installed dependencies stay cached).
    """
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(rootfs.cache_root() / "build.lock"), pythonlayers.scratch() as scratch:
        base = rootfs.ensure_base(say)
        wheel = pythonlayers.build_wheel(repo, Path(scratch))
        build = Build(out_dir, repo, base, wheel, Path(scratch), reuse_layers, say)
        return {spec.name: build_image(spec, build) for spec in SPECS}


def build_image(spec: ImageSpec, build: Build) -> ImageArchive:
    ref = chart_ref(build.repo, spec.name)
    base, wheel = build.base, build.wheel
    deps_key = pythonlayers.dependencies_key(wheel.path, spec.extra, base.architecture)
    inputs = inputs_key(spec, ref, base.key, deps_key, wheel.digest)
    path = build.out_dir / f"{spec.name}.oci.tar"
    kept = reusable(path, inputs)
    if kept is not None:
        build.say(f"{ref}: inputs unchanged, kept {path}")
        return kept
    build.say(f"{ref}: building {path}")
    deps = pythonlayers.ensure_dependencies(wheel.path, spec.extra, base.architecture)
    check_contents(spec, deps)
    project = pythonlayers.install_project(wheel, build.work)
    reuse = build.reuse_layers
    layers = [
        cached_layer("base", base.fingerprint(), reuse, lambda blobs: base_layer(blobs, base)),
        cached_layer(
            f"deps-{spec.extra}", deps.fingerprint(), reuse, lambda b: python_layer(b, deps)
        ),
        python_layer(build.work / "blobs", project, spec.data_dir),
    ]
    archive = write_image(spec, ref, path, layers, build.work / "blobs", base.architecture)
    stamp = {"inputs": inputs} | asdict(archive) | {"path": str(path)}
    path.with_suffix(".json").write_text(json.dumps(stamp, indent=1))
    return archive


def inputs_key(spec: ImageSpec, ref: str, base_key: str, deps_key: str, wheel_digest: str) -> str:
    scripts = [ocilayout.__file__, pythonlayers.__file__, rootfs.__file__, __file__]
    recipe = {
        "spec": asdict(spec),
        "ref": ref,
        "base": base_key,
        "dependencies": deps_key,
        "wheel": wheel_digest,
        "scripts": [hashlib.sha256(Path(s).read_bytes()).hexdigest() for s in scripts],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def reusable(path: Path, inputs: str) -> ImageArchive | None:
    stamp = path.with_suffix(".json")
    if not path.is_file() or not stamp.is_file():
        return None
    recorded = json.loads(stamp.read_text())
    if recorded.get("inputs") != inputs or recorded.get("path") != str(path):
        return None
    return ImageArchive(
        recorded["ref"],
        path,
        recorded["digest"],
        recorded["compressed_size"],
        recorded["unpacked_size"],
    )


def check_contents(spec: ImageSpec, deps: pythonlayers.Installed) -> None:
    """The operator image must not carry onnxruntime; the agent's must."""
    for package in spec.forbidden:
        if (deps.lib / package).exists():
            raise RuntimeError(
                f"image {spec.name}: extra [{spec.extra}] pulls in {package} "
                f"(installed: {', '.join(deps.distributions)}); drop what requires it from "
                f"[project.optional-dependencies] {spec.extra} in pyproject.toml"
            )
    for package in spec.required:
        if not (deps.lib / package).is_dir():
            raise RuntimeError(f"image {spec.name}: extra [{spec.extra}] did not install {package}")


def cached_layer(
    kind: str, source_key: str, reuse: bool, make: Callable[[Path], ocilayout.Layer]
) -> ocilayout.Layer:
    """The layer of cached files `source_key`, from the cache or written there (again, when
    `reuse` is False); keyed by the files and by ocilayout.py, which writes it."""
    writer = hashlib.sha256(Path(ocilayout.__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{source_key} {writer}".encode()).hexdigest()[:16]
    directory = rootfs.cache_root() / "layers" / f"{kind}-{key}"
    record = directory / "layer.json"
    if reuse and record.is_file():
        return ocilayout.Layer.from_json(json.loads(record.read_text()))
    shutil.rmtree(directory, ignore_errors=True)
    layer = make(directory)
    record.write_text(json.dumps(layer.to_json(), indent=1))
    rootfs.prune(directory)
    return layer


def base_layer(blobs: Path, base: rootfs.BaseRootfs) -> ocilayout.Layer:
    tree = ocilayout.Tree(base.path, "", owner=None, normalize_modes=False)
    created_by = (
        f"debootstrap --variant=minbase --include={','.join(rootfs.PACKAGES)} {rootfs.SUITE}"
    )
    return ocilayout.write_layer(blobs, [tree], created_by=created_by)


def python_layer(
    blobs: Path, files: pythonlayers.Installed, data_dir: str | None = None
) -> ocilayout.Layer:
    trees = [
        ocilayout.Tree(files.lib, pythonlayers.SITE_PACKAGES),
        ocilayout.Tree(files.bin, pythonlayers.SCRIPTS),
    ]
    owner = (rootfs.USER_ID, rootfs.USER_ID)
    directories = [ocilayout.Directory(data_dir, 0o750, owner)] if data_dir else []
    installed = ", ".join(files.distributions)
    created_by = f"pip install --target {pythonlayers.SITE_PACKAGES} {installed}"
    return ocilayout.write_layer(blobs, trees, directories, created_by=created_by)


def write_image(
    spec: ImageSpec,
    ref: str,
    path: Path,
    layers: list[ocilayout.Layer],
    blobs: Path,
    architecture: str,
) -> ImageArchive:
    config = ocilayout.ImageConfig(
        user=USER,
        env=ENV,
        entrypoint=spec.entrypoint,
        cmd=spec.cmd,
        exposed_ports=spec.ports,
        volumes=(spec.data_dir,) if spec.data_dir else (),
        labels={
            "org.opencontainers.image.title": f"edge-rollout {spec.name}",
            "org.opencontainers.image.version": ref.rpartition(":")[2],
        },
        architecture=architecture,
    )
    manifest, config_blob = ocilayout.write_manifest(blobs, config, layers)
    files = {layer.blob.digest: layer.path for layer in layers}
    for blob in (manifest, config_blob):
        files[blob.digest] = blobs / blob.digest.removeprefix("sha256:")
    ocilayout.write_archive(path, files, manifest, ref, architecture)
    return ImageArchive(
        ref=ref,
        path=path,
        digest=manifest.digest,
        compressed_size=manifest.size + config_blob.size + sum(layer.blob.size for layer in layers),
        unpacked_size=sum(layer.unpacked_size for layer in layers),
    )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One build at a time on this machine (the caches are shared)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_rollout.testing.images", description=__doc__
    )
    parser.add_argument("out_dir", type=Path, nargs="?", default=REPO / "build" / "images")
    args = parser.parse_args(argv)
    started = time.monotonic()
    archives = build_images(args.out_dir)
    for archive in archives.values():
        print(
            f"{archive.ref}  {archive.digest}  {megabytes(archive.compressed_size)} compressed, "
            f"{megabytes(archive.unpacked_size)} unpacked  {archive.path}"
        )
    print(f"images ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
