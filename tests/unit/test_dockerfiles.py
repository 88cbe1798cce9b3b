"""The Dockerfiles, checked without a container engine: the same image as `make images`.

`make images` (edge_rollout.testing.images) is the build the integration tests run; these checks
keep the Dockerfiles for users with a container engine in step with it: the same Debian base and
Python, non-root numeric user, pip extra, ENTRYPOINT, CMD and ports, no placeholder digest, and no
COPY of a missing path.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_rollout.testing import images, pythonlayers, rootfs
from tests.support import REPO

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Image:
    dockerfile: str
    spec: images.ImageSpec

    @property
    def extra(self) -> str:
        return self.spec.extra

    @property
    def entrypoint(self) -> str:
        return self.spec.entrypoint[0]


SPECS = {spec.name: spec for spec in images.SPECS}
IMAGES = [
    pytest.param(Image("operator/Dockerfile", SPECS["operator"]), id="operator"),
    pytest.param(Image("edge-agent/Dockerfile", SPECS["agent"]), id="agent"),
]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def build_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in steps if keyword == "ARG" and "=" in rest)


@pytest.mark.parametrize("image", IMAGES)
def test_every_stage_is_the_debian_suite_of_make_images_with_no_placeholder_digest(
    image: Image,
) -> None:
    text = (REPO / image.dockerfile).read_text()
    for digest in DIGEST.findall(text):
        assert len(set(digest)) > 1, f"{image.dockerfile}: sha256:{digest} is a placeholder"
    steps = instructions(REPO / image.dockerfile)
    args = build_args(steps)
    for keyword, rest in steps:
        if keyword != "FROM":
            continue
        reference = rest.split(" AS ")[0]
        variable = re.fullmatch(r"\$\{(\w+)\}", reference)
        resolved = args[variable.group(1)] if variable else reference
        assert resolved.split("@")[0] == f"debian:{rootfs.SUITE}-slim", resolved


@pytest.mark.parametrize("image", IMAGES)
def test_the_dockerfile_describes_the_image_make_images_builds(image: Image) -> None:
    final = final_stage(instructions(REPO / image.dockerfile))
    last = {keyword: rest for keyword, rest in final}
    assert last["USER"] == images.USER
    assert tuple(json.loads(last["ENTRYPOINT"])) == image.spec.entrypoint
    assert tuple(json.loads(last.get("CMD", "[]"))) == image.spec.cmd
    assert sorted(last["EXPOSE"].split()) == sorted(p.split("/")[0] for p in image.spec.ports)
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    for variable in images.ENV:
        assert variable.startswith("PATH=") or variable in env, f"ENV lacks {variable}"
    copied = " ".join(rest for keyword, rest in final if keyword == "COPY")
    assert pythonlayers.SITE_PACKAGES in copied
    assert pythonlayers.SCRIPTS in copied
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "apt-get install -y --no-install-recommends python3" in runs
    if image.spec.data_dir:
        assert f"install -d -o 65532 -g 65532 -m 0750 {image.spec.data_dir}" in runs


@pytest.mark.parametrize("image", IMAGES)
def test_the_final_stage_runs_as_a_numeric_non_root_user(image: Image) -> None:
    users = [
        rest
        for keyword, rest in final_stage(instructions(REPO / image.dockerfile))
        if keyword == "USER"
    ]
    assert users, f"{image.dockerfile}: the final stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"USER {users[-1]}: use a numeric uid (runAsNonRoot checks it)"
    assert int(uid) != 0, f"USER {users[-1]}: the uid is root"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1]}: non-root gid"


@pytest.mark.parametrize("image", IMAGES)
def test_the_wheel_is_installed_with_the_components_extra(image: Image) -> None:
    runs = [rest for keyword, rest in instructions(REPO / image.dockerfile) if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs, f"{image.dockerfile}: no pip install"
    assert any(f".whl)[{image.extra}]" in run for run in installs), installs
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert image.extra in extras


@pytest.mark.parametrize("image", IMAGES)
def test_the_entrypoint_is_a_console_script_of_the_package(image: Image) -> None:
    entrypoints = [
        rest for keyword, rest in instructions(REPO / image.dockerfile) if keyword == "ENTRYPOINT"
    ]
    assert entrypoints, f"{image.dockerfile}: no ENTRYPOINT"
    command = json.loads(entrypoints[-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] == image.entrypoint
    assert command[0] in scripts


@pytest.mark.parametrize("image", IMAGES)
def test_everything_copied_from_the_context_exists_and_is_not_ignored(image: Image) -> None:
    ignore = (REPO / f"{image.dockerfile}.dockerignore").read_text()
    for keyword, rest in instructions(REPO / image.dockerfile):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            assert (REPO / source).exists(), f"{image.dockerfile}: COPY {source}: no such path"
            assert f"!{source}" in ignore, f"{source} is excluded by the .dockerignore"
