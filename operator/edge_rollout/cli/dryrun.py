"""`plan -f FILE` (also `edge-rollout plan`): what applying a ModelDeployment would do, applied
nowhere.

Reads the file, has the apiserver validate it with a server-side dry run, fetches and verifies the
release from the store as the operator does, and plans once against the current fleet (and the
deployment's current status, if it exists). Writes nothing to the cluster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from rich.console import Group, RenderableType

from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.api.release import Release
from edge_rollout.cli import explaining, options, whyview
from edge_rollout.cli.explaining import DryRun, Fleet
from edge_rollout.cli.fleetview import Cluster, ClusterError
from edge_rollout.store.releases import ReleaseCache, ReleaseUnavailableError, releases_for

HELP = "dry run: which node would get which variant of a ModelDeployment file, and why"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plan",
        parents=[options.cluster_options()],
        help=HELP,
        description=f"{HELP}. Nothing is applied: the file is validated by the apiserver with a "
        "server-side dry run, the release is read from the store and verified, and the "
        "operator's planner runs once against the current fleet.",
    )
    add_arguments(p)
    p.set_defaults(handler=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--filename", required=True, help="ModelDeployment YAML or JSON file, or - for stdin"
    )
    p.add_argument(
        "--public-key",
        type=Path,
        help="public key file for releases whose spec.model.store.publicKey is empty (the "
        "operator's default key; also $EDGE_ROLLOUT_STORE_PUBLIC_KEY[_FILE])",
    )
    p.add_argument(
        "--no-server-validation",
        action="store_true",
        help="skip the server-side dry run that checks the file against the CRD's rules",
    )


def run(args: argparse.Namespace) -> int:
    try:
        documents = list(load_documents(args.filename))
        if not documents:
            raise PlanError(f"{args.filename} holds no ModelDeployment (kind: ModelDeployment)")
        cluster = options.cluster(args)
        fleet = cluster.fleet()
        runs = [_plan_one(args, cluster, fleet, doc) for doc in documents]
    except (ClusterError, PlanError) as error:
        return options.fail(str(error))
    options.emit(args, lambda: _data(runs), lambda: _view(runs))
    return 0


class PlanError(Exception):
    """The file or its release cannot be planned; the message says what to fix."""


def load_documents(filename: str) -> Iterator[dict[str, Any]]:
    """The ModelDeployment documents of a YAML/JSON file (other kinds are skipped)."""
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
        loaded = list(yaml.safe_load_all(text))
    except (OSError, yaml.YAMLError) as error:
        raise PlanError(f"cannot read {filename}: {error}") from error
    for document in loaded:
        if isinstance(document, dict) and document.get("kind") == "ModelDeployment":
            yield document


def _plan_one(
    args: argparse.Namespace, cluster: Cluster, fleet: Fleet, document: dict[str, Any]
) -> DryRun:
    document = with_namespace(document, args.namespace, options.namespace(args))
    warning = "" if args.no_server_validation else cluster.validate(document)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    md = parse(document)
    existing = cluster.find_modeldeployment(_meta(md, "namespace"), _meta(md, "name"))
    generation = 1
    if existing is not None:
        md = md.model_copy(update={"status": existing.status})
        generation = int(str(existing.metadata.get("generation") or 1))
    releases = _releases(md, args.public_key)
    return explaining.dry_run(md, releases, fleet, dt.datetime.now(dt.UTC), generation)


def with_namespace(document: Mapping[str, Any], flag: str | None, default: str) -> dict[str, Any]:
    """The document with metadata.namespace set (from -n, or the context's), as kubectl does."""
    meta = dict(document.get("metadata") or {})
    own = meta.get("namespace")
    if own and flag and own != flag:
        raise PlanError(f"the file's namespace {own} does not match -n {flag}: drop one of them")
    meta["namespace"] = own or flag or default
    if not meta.get("name"):
        raise PlanError("metadata.name is missing in the ModelDeployment")
    return {**document, "metadata": meta}


def parse(document: Mapping[str, Any]) -> ModelDeployment:
    try:
        return ModelDeployment.model_validate(dict(document))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"invalid ModelDeployment: {where}: {first['msg']}") from error


def _releases(md: ModelDeployment, key_file: Path | None) -> dict[str, Release]:
    if key_file is not None and not md.spec.model.store.trust_set():
        md = explaining.with_public_key(md, key_file.read_text())
    try:
        return releases_for(md, ReleaseCache())
    except ReleaseUnavailableError as error:
        raise PlanError(
            f"release {md.spec.model.name} {md.spec.model.version} cannot be used "
            f"({error.reason}): {error}"
        ) from error


def _meta(md: ModelDeployment, field: str) -> str:
    return str(md.metadata.get(field) or "")


def _data(runs: list[DryRun]) -> Any:
    if len(runs) == 1:
        return whyview.plan_data(runs[0])
    return {"items": [whyview.plan_data(r) for r in runs]}


def _view(runs: list[DryRun]) -> RenderableType:
    return Group(*(whyview.plan_view(r) for r in runs))
