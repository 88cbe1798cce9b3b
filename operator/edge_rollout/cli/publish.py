"""`edge-rollout publish`: the flags, the progress bars and the printed ModelDeployment.

Turns the arguments into a `publishing.request.PublishRequest`, runs `publishing.pipeline.publish`
with rich progress bars on stderr, and prints a ModelDeployment for the release. The pipeline
itself (build, measure, pack, sign) lives in `edge_rollout.publishing`. Must not touch a cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from edge_rollout.api.modeldeployment import (
    KEY_ID,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelRef,
    StoreRef,
    TrustedKey,
)
from edge_rollout.api.release import Release
from edge_rollout.cli import store as store_cli
from edge_rollout.publishing import onnxmodel, pipeline, request
from edge_rollout.store import keys
from edge_rollout.store.errors import StoreError

console = Console(stderr=True)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("publish", help="build, measure, chunk and sign a model release")
    p.add_argument("model", type=Path, help="the FP32 ONNX model")
    p.add_argument("--name", required=True, help="model name in the store (lower case)")
    p.add_argument("--version", required=True, help="release version, e.g. 1.4.0")
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of fp32,fp16,int8 (default: every one that can be built from the model;"
        " one that cannot is left out with a note)",
    )
    p.add_argument("--store", required=True, type=Path, help="directory store to write")
    p.add_argument("--key", required=True, type=Path, help="private key from edge-rollout keygen")
    p.add_argument(
        "--base-version",
        default=None,
        help="release to compute tensor deltas against (default: latest published)",
    )
    store_cli.public_key_option(p, "also trust this key's signatures on earlier releases (the"
                                " delta base, --golden-from): the old key while rotating to --key"
                                " (repeatable)")  # fmt: skip
    p.add_argument("--store-url", default=None, help="URL nodes use for the store (printed YAML)")
    p.add_argument("--runs", type=int, default=30, help="timed inferences per variant")
    p.add_argument("--samples", type=int, default=4, help="sample inputs for agreement")
    p.add_argument(
        "--golden-from",
        default=None,
        metavar="VERSION",
        help="regression gate: nodes must reproduce VERSION's golden outputs (same variant)"
        " within --golden-atol / --golden-min-cosine, instead of this release's own outputs",
    )
    p.add_argument("--golden-atol", type=float, default=0.05, help="with --golden-from")
    p.add_argument("--golden-min-cosine", type=float, default=0.99, help="with --golden-from")
    p.add_argument("--golden-budget", type=int, default=None, metavar="BYTES",
                   help="golden inputs + outputs per variant (default: 5%% of the smallest"
                   " variant, at least 256 KiB); fewer cases when over, never none")  # fmt: skip
    p.add_argument(
        "--extra-variant",
        action="append",
        metavar="NAME=PATH[:CLASS[:EP+EP...[:PRECISION]]]",
        help="publish a file you built (pruned, distilled, for a vendor's NPU) as one more"
        " variant, e.g. int8-npu=model_hailo.onnx:npu:HailoExecutionProvider:int8; measured on"
        " its providers when this machine has one, else published as not measured (repeatable)",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=DIMxDIM...",
        help="concrete shape for an input with dynamic dimensions, e.g. images=1x3x320x320"
        " (repeatable; the others are chosen automatically)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="DIR_OR_NPZ",
        help="sample inputs (.npz named by input, first axis = samples; or a directory of .npz or"
        " .npy): int8 becomes static quantization calibrated on them, and agreement with fp32"
        " is measured on them",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        req = to_request(args)
        with progress_bars() as bars:
            release = pipeline.publish(req, bars)
    except (onnxmodel.ModelError, StoreError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    print(deployment_yaml(release, args))
    return 0


def to_request(args: argparse.Namespace) -> request.PublishRequest:
    """The publish request the flags describe (flag syntax here, the rest by the request)."""
    shapes = dict(request.parse_input_shape(s) for s in args.input_shape or [])
    return request.PublishRequest(
        model=args.model,
        name=args.name,
        version=args.version,
        store=args.store,
        key=args.key,
        variants=_variants(args.variants),
        extra_variants=tuple(request.parse_extra(s) for s in args.extra_variant or []),
        base_version=args.base_version,
        trusted_keys=tuple(args.public_key),
        runs=args.runs,
        samples=args.samples,
        calibration=args.calibration,
        input_shapes=MappingProxyType(shapes),
        golden_from=args.golden_from,
        golden_atol=args.golden_atol,
        golden_min_cosine=args.golden_min_cosine,
        golden_budget=args.golden_budget,
    )


def _variants(flag: str | None) -> tuple[str, ...] | None:
    return None if flag is None else tuple(v.strip() for v in flag.split(",") if v.strip())


class RichProgress:
    """`publishing.request.Progress` as rich progress bars on stderr, one per task."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int) -> None:
        self._tasks[task] = self._bars.add_task(task, total=total)

    def advance(self, task: str, amount: int) -> None:
        self._bars.advance(self._tasks[task], amount)

    def note(self, message: str) -> None:
        self._bars.console.print(message)


@contextmanager
def progress_bars() -> Iterator[RichProgress]:
    """Progress bars on stderr for the length of a publish."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        yield RichProgress(bars)


def deployment_yaml(release: Release, args: argparse.Namespace) -> str:
    """A ModelDeployment for this release, ready for `kubectl apply -f -`."""
    key = keys.load_private_key(args.key)
    url = args.store_url or args.store.resolve().as_uri()
    pem = keys.public_key_pem(key.public_key())
    store = StoreRef(url=url, public_key=pem)
    if args.public_key:  # rotating: trust the old keys and this one
        named = [*args.public_key, keys.Trusted(args.key.name, key.public_key())]
        listed = [TrustedKey(id=_key_name(t), public_key=keys.public_key_pem(t.key)) for t in named]
        store = StoreRef(url=url, trusted_keys=listed)
    spec = ModelDeploymentSpec(
        model=ModelRef(name=release.model, version=release.version, store=store)
    )
    md = ModelDeployment(metadata={"name": release.model}, spec=spec)
    body = md.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    body = {"apiVersion": md.api_version, "kind": md.kind, **body}
    body.pop("status", None)
    return yaml.dump(body, Dumper=_BlockDumper, sort_keys=False)


def _key_name(trusted: keys.Trusted) -> str:
    """The key's file name as its trustedKeys id when it is a valid one, else its key id."""
    return trusted.name if KEY_ID.matches(trusted.name) else trusted.key_id


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the PEM key) as `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
