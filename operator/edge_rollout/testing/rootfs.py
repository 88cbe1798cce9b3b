"""The images' base: a Debian minbase rootfs with python3, built by debootstrap, cached by key.

The mirror comes from this machine's apt sources at run time (nothing about registries is written
here). Docs, locales, apt lists and caches are removed; Python files are compiled with unchecked
hashes, since every mtime in a layer is fixed. Needs root (debootstrap, chroot).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
PYTHON_VERSION = "3.11"
"""Debian bookworm's python3; the wheels pip installs here must be for the same version."""
PACKAGES = ("python3",)
USER_ID = 65532
USER_NAME = "edge-rollout"
SOURCES = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")
MIRROR_VARIABLE = "EDGE_ROLLOUT_DEBIAN_MIRROR"
REMOVED = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/log",
    "var/cache/debconf",
    "var/cache/ldconfig",
    "dev",
    "run",
    "tmp",
)
"""Emptied (the directory stays): caches, docs, logs, and what the runtime mounts anyway."""
DELETED = (
    "etc/apt/sources.list",
    "etc/resolv.conf",
    "etc/hostname",
    "etc/machine-id",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
)
"""Files debootstrap copies from the host or leaves as backups."""
RECIPE = 1
"""Bump when this module changes what the base rootfs holds: the cached one is then rebuilt."""
COMPILED = ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages")


ONE_LINE = re.compile(r"^deb\s+(?:\[(?P<options>[^\]]*)\]\s*)?(?P<uri>\S+)\s+(?P<suite>\S+)")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    keyring: str | None


@dataclass(frozen=True)
class BaseRootfs:
    key: str
    path: Path
    architecture: str

    def fingerprint(self) -> str:
        """The key and the package versions installed (a rebuild may get newer point releases)."""
        status = (self.path / "var/lib/dpkg/status").read_bytes()
        return f"{self.key}-{hashlib.sha256(status).hexdigest()}"


def cache_root() -> Path:
    base = os.environ.get("EDGE_ROLLOUT_CACHE") or str(Path.home() / ".cache" / "edge-rollout")
    return Path(base) / "images"


def base_key(architecture: str) -> str:
    """What defines the base: suite, packages, architecture and RECIPE."""
    recipe = {
        "suite": SUITE,
        "packages": PACKAGES,
        "architecture": architecture,
        "recipe": RECIPE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def prune(current: Path) -> None:
    """Remove the other versions of a cache entry: same name up to the last `-<key>`."""
    stem = current.name.rpartition("-")[0]
    for sibling in current.parent.glob(f"{stem}-*"):
        if sibling != current and sibling.is_dir() and sibling.name.rpartition("-")[0] == stem:
            remove_tree(sibling)


def parse_one_line(text: str) -> Iterator[AptSource]:
    """`deb [signed-by=...] URI suite component...` lines of a sources.list."""
    for line in text.splitlines():
        match = ONE_LINE.match(line.split("#", 1)[0].strip())
        if match:
            options = dict(
                word.partition("=")[::2] for word in (match["options"] or "").split() if "=" in word
            )
            yield AptSource(match["uri"], (match["suite"],), options.get("signed-by"))


def parse_deb822(text: str) -> Iterator[AptSource]:
    """Stanzas of a .sources file (Types, URIs, Suites, Signed-By, Enabled)."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield AptSource(uri, tuple(fields.get("suites", "").split()), fields.get("signed-by"))


def apt_sources() -> list[AptSource]:
    found = list(parse_one_line(SOURCES.read_text())) if SOURCES.is_file() else []
    for path in sorted(SOURCES_DIR.glob("*.list")):
        found += parse_one_line(path.read_text())
    for path in sorted(SOURCES_DIR.glob("*.sources")):
        found += parse_deb822(path.read_text())
    return found


def mirror_for(suite: str, sources: list[AptSource]) -> AptSource:
    """The first apt source serving `suite` itself (not -updates or -security)."""
    override = os.environ.get(MIRROR_VARIABLE)
    if override:
        return AptSource(override, (suite,), None)
    for source in sources:
        if suite in source.suites and source.uri.startswith(("http://", "https://", "file:")):
            return source
    raise RuntimeError(
        f"no apt source for suite {suite!r} in {SOURCES} or {SOURCES_DIR}/*.list|*.sources: "
        f"add one (`deb <your Debian mirror> {suite} main`) or set {MIRROR_VARIABLE}=<mirror URL>"
    )


def host_architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def apt_proxy_environment() -> dict[str, str]:
    """http(s)_proxy from apt's own configuration when the environment sets none (wget reads it)."""
    environment = dict(os.environ)
    for scheme in ("http", "https"):
        variable = f"{scheme}_proxy"
        if environment.get(variable):
            continue
        shell = subprocess.run(
            ["apt-config", "shell", "PROXY", f"Acquire::{scheme}::Proxy"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        value = shell.partition("=")[2].strip().strip("'\"")
        if value and value.upper() != "DIRECT":
            environment[variable] = value
    return environment


def ensure_base(log: Callable[[str], None]) -> BaseRootfs:
    """The cached base rootfs, built first if missing (about 1.5 min)."""
    architecture = host_architecture()
    key = base_key(architecture)
    final = cache_root() / f"base-{SUITE}-{architecture}-{key}"
    if (final / "rootfs").is_dir():
        return BaseRootfs(key, final / "rootfs", architecture)
    if os.geteuid() != 0:
        raise RuntimeError("building the base rootfs needs root (debootstrap, chroot): run as root")
    partial = final.with_name(final.name + ".partial")
    remove_tree(partial)
    source = mirror_for(SUITE, apt_sources())
    log(f"debootstrap {SUITE} ({', '.join(PACKAGES)}) from {source.uri} into {final}")
    debootstrap(partial / "rootfs", source)
    tidy(partial / "rootfs")
    partial.replace(final)
    prune(final)
    return BaseRootfs(key, final / "rootfs", architecture)


def debootstrap(target: Path, source: AptSource) -> None:
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
    if source.keyring and Path(source.keyring).is_file():
        command.append(f"--keyring={source.keyring}")
    command += [SUITE, str(target), source.uri]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            command, check=True, capture_output=True, text=True, env=apt_proxy_environment()
        )
    except subprocess.CalledProcessError as error:
        log_file = target / "debootstrap" / "debootstrap.log"
        detail = log_file.read_text()[-2000:] if log_file.is_file() else error.stderr[-2000:]
        raise RuntimeError(f"debootstrap {SUITE} from {source.uri} failed:\n{detail}") from error
    finally:
        unmount_under(target)


def tidy(rootfs: Path) -> None:
    """Drop caches and host files, add the image user, compile Python with unchecked hashes."""
    for relative in REMOVED:
        empty_directory(rootfs / relative)
    for relative in DELETED:
        (rootfs / relative).unlink(missing_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    add_user(rootfs)
    for cache in sorted(rootfs.glob("usr/**/__pycache__")):
        shutil.rmtree(cache)
    subprocess.run(
        [
            "chroot",
            str(rootfs),
            "/usr/bin/python3",
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            *COMPILED,
        ],
        check=True,
        capture_output=True,
    )


def add_user(rootfs: Path) -> None:
    """The images' non-root user and group 65532 (numeric in the config; named for `ls -l`)."""
    with (rootfs / "etc/passwd").open("a") as passwd:
        passwd.write(f"{USER_NAME}:x:{USER_ID}:{USER_ID}::/nonexistent:/usr/sbin/nologin\n")
    with (rootfs / "etc/group").open("a") as group:
        group.write(f"{USER_NAME}:x:{USER_ID}:\n")


def empty_directory(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def unmount_under(path: Path) -> None:
    """Unmount whatever debootstrap left mounted below `path` (deepest first)."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def remove_tree(path: Path) -> None:
    if path.exists():
        unmount_under(path)
        shutil.rmtree(path)
