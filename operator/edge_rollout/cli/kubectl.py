"""`kubectl-edge_rollout`, run as `kubectl edge-rollout ...`: the fleet view and rollout controls.

Parsing and wiring only: reads go through `fleetview`, decisions through `explaining` (the
operator's own core), output through `statusview` / `whyview`, spec patches through `steering`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import sys
from collections.abc import Callable

from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.api.release import Release
from edge_rollout.cli import (
    dryrun,
    explaining,
    listview,
    options,
    statusview,
    steering,
    watching,
    whyview,
)
from edge_rollout.cli.fleetview import ClusterError
from edge_rollout.store.releases import ReleaseCache, ReleaseUnavailableError, releases_for

GITOPS_NOTE = (
    "pause, resume, promote and abort are JSON merge patches of spec fields (spec.paused, "
    "spec.strategy.approved, spec.model.version): in a GitOps setup (Argo CD, Flux) write the same "
    "fields in Git, or the next sync undoes the change."
)
Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl edge-rollout",
        description="Fleet view and rollout controls for edge-rollout ModelDeployments. "
        + GITOPS_NOTE,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = options.cluster_options()
    status_help = "a rollout: step, counts by outcome and variant, bytes saved, worst nodes"
    _add_status(_add(sub, common, "status", status_help, status))
    list_help = "every ModelDeployment: phase, version, stable version, step, nodes"
    _add(sub, common, "list", list_help, list_command).add_argument(
        "-A", "--all-namespaces", action="store_true", help="in every namespace"
    )
    _add_why(_add(sub, common, "why", WHY_HELP, why_command))
    dryrun.add_arguments(_add(sub, common, "plan", dryrun.HELP, dryrun.run))
    nodes_help = "hardware table: arch, cores, memory, accelerators, providers, heartbeat, models"
    _add(sub, common, "nodes", nodes_help, nodes)
    _add_steering(sub, common)
    _add(sub, common, "version", "the plugin's version and the apiserver's", version)
    return parser


def _add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="ModelDeployment")
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="keep watching: redraw on a terminal, print a new block on each change in a pipe",
    )
    p.add_argument(
        "--timeout",
        help="wait until the rollout settles, at most this long (30s, 5m, 1h), and exit with its "
        "outcome: " + watching.EXIT_CODES,
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reads (default 1)")
    p.epilog = watching.EXIT_CODES


WHY_HELP = "why a node got its variant: the selection with the reason for every candidate"


def _add_why(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", help="node name")
    p.add_argument(
        "deployment",
        nargs="?",
        help="only this ModelDeployment (default: every one that selects the node, in all "
        "namespaces unless -n is given)",
    )
    p.add_argument(
        "--public-key",
        help="public key file for releases signed by the operator's default key "
        "(spec.model.store.publicKey empty)",
    )


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
    p.set_defaults(handler=handler)
    return p


def _add_steering(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    texts = {
        "pause": ("freeze the rollout: no new nodes are asked (sets spec.paused: true)", pause),
        "resume": ("continue a paused rollout (sets spec.paused: false)", resume),
        "promote": (
            "pass the pause the rollout waits at (sets spec.strategy.approved to the current "
            "version and step)",
            promote,
        ),
        "abort": (
            "PAUSE the rollout where it is (sets spec.paused: true: nodes keep what they run); "
            "unlike Argo Rollouts' abort it does not return to stable: to go back to the stable "
            "version, use abort --rollback",
            abort,
        ),
    }
    for name, (text, handler) in texts.items():
        p = _add(sub, common, name, text, handler)
        p.description = f"{text}. {GITOPS_NOTE}"
        p.add_argument("name", help="ModelDeployment name")
    sub.choices["promote"].add_argument(
        "--full", action="store_true", help="pass every remaining pause (throughStep: 64)"
    )
    sub.choices["abort"].add_argument(
        "--rollback",
        action="store_true",
        help="return to stable (what Argo Rollouts' abort does): set spec.model.version back "
        "to status.stableVersion, spec.paused: false and spec.strategy.approved for that "
        "version: nodes return in waves within maxUnavailable, pauses passed",
    )


def status(args: argparse.Namespace) -> int:
    cluster = options.cluster(args)
    if args.watch or args.timeout:
        try:
            return watching.follow(args, cluster, options.namespace(args))
        except ValueError as error:  # a --timeout that is not a duration
            return options.fail(f"--timeout: {error}")
    md = cluster.modeldeployment(options.namespace(args), args.name)
    options.emit(args, lambda: statusview.status_data(md), lambda: statusview.status_view(md))
    return 0


def list_command(args: argparse.Namespace) -> int:
    where = None if args.all_namespaces else options.namespace(args)
    mds = options.cluster(args).modeldeployments(where)
    options.emit(args, lambda: listview.list_data(mds), lambda: listview.list_view(mds))
    return 0


def version(args: argparse.Namespace) -> int:
    plugin = _plugin_version()
    try:
        server: str | None = options.cluster(args).server_version()
    except ClusterError as error:
        print(f"Plugin version: {plugin}")
        return options.fail(str(error))
    data = {"pluginVersion": plugin, "serverVersion": server}
    text = f"Plugin version: {plugin}\nServer version: {server}"
    options.emit(args, lambda: data, lambda: text)
    return 0


def _plugin_version() -> str:
    try:
        return importlib.metadata.version("edge-rollout")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def nodes(args: argparse.Namespace) -> int:
    fleet = options.cluster(args).fleet()
    now = dt.datetime.now(dt.UTC)
    options.emit(
        args, lambda: statusview.nodes_data(fleet, now), lambda: statusview.nodes_view(fleet, now)
    )
    return 0


def why_command(args: argparse.Namespace) -> int:
    cluster = options.cluster(args)
    fleet = cluster.fleet(args.node)
    if not fleet.nodes and not fleet.edgenodes:
        return options.fail(f"node {args.node} not found (no Node and no EdgeNode of that name)")
    if args.deployment:
        mds = [cluster.modeldeployment(options.namespace(args), args.deployment)]
    else:
        mds = explaining.selecting(cluster.modeldeployments(args.namespace), fleet, args.node)
    found = [_explain(md, fleet, args.node, args.public_key) for md in mds]
    explained = [e for e in found if e is not None]
    hardware = explaining.node_hardware(args.node, fleet)
    options.emit(
        args,
        lambda: whyview.why_data(explained),
        lambda: whyview.why_view(args.node, hardware, explained),
    )
    return 0


def _explain(
    md: ModelDeployment, fleet: explaining.Fleet, node: str, key_file: str | None
) -> explaining.Explanation | None:
    reading = md
    if key_file and not md.spec.model.store.trust_set():
        with open(key_file) as f:
            reading = explaining.with_public_key(md, f.read())
    release: Release | str
    try:
        release = releases_for(reading, ReleaseCache())[md.spec.model.version]
    except ReleaseUnavailableError as error:
        release = f"release {md.spec.model.version} cannot be used ({error.reason}): {error}"
    return explaining.explain_node(md, release, fleet, node, dt.datetime.now(dt.UTC))


def pause(args: argparse.Namespace) -> int:
    return _patch(args, lambda md: steering.paused_patch(True), "paused")


def resume(args: argparse.Namespace) -> int:
    return _patch(args, lambda md: steering.paused_patch(False), "resumed")


def promote(args: argparse.Namespace) -> int:
    return _patch(args, lambda md: steering.promote_patch(md, args.full), "promoted")


def abort(args: argparse.Namespace) -> int:
    verb = "rolling back to the stable version" if args.rollback else steering.PAUSE_ONLY
    return _patch(args, lambda md: steering.abort_patch(md, args.rollback), verb)


def _patch(
    args: argparse.Namespace, build: Callable[[ModelDeployment], dict[str, object]], verb: str
) -> int:
    cluster = options.cluster(args)
    namespace = options.namespace(args)
    md = cluster.modeldeployment(namespace, args.name)
    try:
        patch = build(md)
    except steering.SteeringError as error:
        return options.fail(str(error))
    updated = cluster.patch_spec(namespace, args.name, patch)
    if args.output != "table":
        options.emit(args, lambda: patch, lambda: "")
        return 0
    print(f"modeldeployment.edgerollout.dev/{args.name} {verb} (merge patch {_compact(patch)})")
    print(steering.after_note(args.command, md, updated, getattr(args, "rollback", False)))
    return 0


def _compact(patch: object) -> str:
    return json.dumps(patch, separators=(",", ":"))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        code = handler(args)
    except ClusterError as error:
        code = options.fail(str(error))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
