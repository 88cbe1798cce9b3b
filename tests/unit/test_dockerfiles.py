"""The Dockerfiles, checked without a container engine: pinned base, non-root user, right extra.

Images cannot be built here; these checks catch what breaks silently: a floating base tag, a root
user, the wrong pip extra, an entry point that is not a console script, a COPY of a missing path.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO

PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Image:
    dockerfile: str
    extra: str
    entrypoint: str


IMAGES = [
    pytest.param(Image("operator/Dockerfile", "operator", "edge-rollout"), id="operator"),
    pytest.param(Image("edge-agent/Dockerfile", "agent", "edge-rollout-agent"), id="agent"),
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
def test_every_base_image_is_python_3_11_slim_pinned_by_digest(image: Image) -> None:
    steps = instructions(REPO / image.dockerfile)
    args = build_args(steps)
    stages: set[str] = set()
    for keyword, rest in steps:
        if keyword != "FROM":
            continue
        reference, *alias = rest.split(" AS ")
        variable = re.fullmatch(r"\$\{(\w+)\}", reference)
        resolved = args[variable.group(1)] if variable else reference
        if resolved not in stages:
            assert PINNED.match(resolved), f"{image.dockerfile}: {resolved} is not pinned by digest"
            assert resolved.startswith("python:3.11-slim@"), resolved
        stages.update(a.strip() for a in alias)


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
    runs = [
        rest
        for keyword, rest in final_stage(instructions(REPO / image.dockerfile))
        if keyword == "RUN"
    ]
    installs = [run for run in runs if "pip install" in run]
    assert installs, f"{image.dockerfile}: no pip install in the final stage"
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
