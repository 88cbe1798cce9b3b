"""Inputs of the bad-input corpus that are built rather than stored: models for `edge-rollout
publish`, tampered copies of a real store, and ModelDeployments the operator must refuse to roll
out; plus the healthy deployment that must stay undisturbed. Used by
tests/integration/test_bad_input_corpus.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from edge_rollout.core.conditions import rfc3339
from edge_rollout.store import codec, keys
from tests.integration.store_fixtures import build_mlp
from tests.support import Kubectl

OPERATOR_ARGS = ["run", "-A", "--standalone", "-m", "edge_rollout.controller.handlers"]
CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
FAST = ["--runs", "2", "--samples", "1", "--variants", "fp32"]


@dataclass(frozen=True)
class Published:
    """A real store with release `m@1.0` of a small MLP, and its keys."""

    root: Path
    key: Path
    public_key: Path
    model: Path


@dataclass
class Healthy:
    """A deployment Ready on the corpus nodes while the corpus runs."""

    namespace: str
    name: str
    store: tuple[Path, str]
    before: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))


def publish_good(work: Path) -> Published:
    work.mkdir(parents=True, exist_ok=True)
    key = work / "key"
    subprocess.run([*CLI, "keygen", str(key)], check=True, capture_output=True)
    model = build_mlp(work / "mlp.onnx")
    subprocess.run(
        [*CLI, "publish", str(model), "--name", "m", "--version", "1.0", "--store",
         str(work / "store"), "--key", str(key), *FAST],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return Published(work / "store", key, Path(f"{key}.pub"), model)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (empty when it does not exist)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ----- models for `edge-rollout publish` --------------------------------------------------------


def _args(work: Path, published: Published, model: Path, *extra: str) -> list[str]:
    return [str(model), "--name", "m", "--version", "2.0", "--store", str(work / "store"),
            "--key", str(published.key), *FAST, *extra]  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _graph_model(path: Path, nodes: list[onnx.NodeProto], output: str) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _external(work: Path, published: Published, location: str, length: int | None) -> Path:
    """The MLP with its first weight moved to external data at `location`."""
    model = onnx.load(str(published.model))
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    values = {"location": location, "offset": "0"}
    if length is not None:
        values["length"] = str(length)
    for k, v in values.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    tensor.ClearField("raw_data")
    path = work / "model.onnx"
    onnx.save(model, str(path))
    return path


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


def _huge_claim(work: Path, p: Published) -> list[str]:
    _sparse(work / "weights.bin", 64 << 30)
    return _args(work, p, _external(work, p, "weights.bin", 64 << 30))


def _truncated_external(work: Path, p: Published) -> list[str]:
    _sparse(work / "weights.bin", 1000)
    return _args(work, p, _external(work, p, "weights.bin", 64 * 256 * 4))


def _dims_lie(work: Path, p: Published) -> list[str]:
    model = onnx.load(str(p.model))
    model.graph.initializer[0].dims[:] = [1 << 20, 1 << 20]
    onnx.save(model, str(work / "model.onnx"))
    return _args(work, p, work / "model.onnx")


def _other_content(work: Path, p: Published) -> list[str]:
    """Another model published as the version the store already has."""
    store = work / "copy"
    subprocess.run(["cp", "-a", str(p.root), str(store)], check=True)
    other = build_mlp(work / "other.onnx", seed=7)
    return [str(other), "--name", "m", "--version", "1.0", "--store", str(store),
            "--key", str(p.key), *FAST]  # fmt: skip


def _bad_key_file(work: Path, p: Published) -> list[str]:
    (work / "key").write_text("not a key\n")
    args = _args(work, p, p.model)
    args[args.index("--key") + 1] = str(work / "key")
    return args


PublishRecipe = Callable[[Path, Published], list[str]]
PUBLISH: dict[str, tuple[str, PublishRecipe]] = {
    "not-onnx": (
        "4 KiB of bytes that are not ONNX",
        lambda w, p: _args(w, p, _write(w / "m.onnx", bytes(i * 7 % 251 for i in range(4096)))),
    ),
    "empty-file": ("an empty file", lambda w, p: _args(w, p, _write(w / "m.onnx", b""))),
    "text-file": (
        "a YAML file named .onnx",
        lambda w, p: _args(w, p, _write(w / "m.onnx", b"apiVersion: v1\nkind: ConfigMap\n")),
    ),
    "truncated-onnx": (
        "the first half of a real model",
        lambda w, p: _args(w, p, _write(w / "m.onnx", p.model.read_bytes()[:30000])),
    ),
    "missing-file": (
        "a model path that does not exist",
        lambda w, p: _args(w, p, w / "nowhere.onnx"),
    ),
    "no-nodes": (
        "a valid ONNX file whose graph has no nodes",
        lambda w, p: _args(w, p, _graph_model(w / "m.onnx", [], "x")),
    ),
    "unknown-operator": (
        "a graph with an operator ONNX does not have",
        lambda w, p: _args(
            w, p, _graph_model(w / "m.onnx", [helper.make_node("Frobnicate", ["x"], ["y"])], "y")
        ),
    ),
    "dims-larger-than-data": (
        "a weight declaring 2^40 elements with 64 KiB of data",
        _dims_lie,
    ),
    "external-data-outside-directory": (
        "external data at ../../../../etc/passwd",
        lambda w, p: _args(w, p, _external(w, p, "../../../../etc/passwd", 65536)),
    ),
    "external-data-absolute-path": (
        "external data at /etc/passwd",
        lambda w, p: _args(w, p, _external(w, p, "/etc/passwd", None)),
    ),
    "external-data-missing": (
        "external data in a file that is not there",
        lambda w, p: _args(w, p, _external(w, p, "weights.bin", 65536)),
    ),
    "external-data-huge-claim": (
        "huge: a weight claiming 64 GiB of external data (a sparse file)",
        _huge_claim,
    ),
    "external-data-truncated": (
        "external data file shorter than the weight it holds",
        _truncated_external,
    ),
    "name-with-space": (
        "--name 'My Model'",
        lambda w, p: [*_args(w, p, p.model)[:1], "--name", "My Model", *_args(w, p, p.model)[3:]],
    ),
    "unknown-variant": (
        "--variants fp64",
        lambda w, p: [*_args(w, p, p.model), "--variants", "fp64"],
    ),
    "key-missing": (
        "--key pointing at no file",
        lambda w, p: [*_args(w, p, p.model)[: -len(FAST) - 2], "--key", str(w / "nokey"), *FAST],
    ),
    "key-not-a-key": ("--key pointing at a file that is not a key", _bad_key_file),
    "version-republished-with-other-content": (
        "another model published as an existing version",
        _other_content,
    ),
}


# ----- tampered stores for `edge-rollout store verify` ------------------------------------------


def _index(store: Path) -> Path:
    return store / "models" / "m" / "1.0" / "index.json"


def _first(store: Path, kind: str) -> Path:
    return sorted(p for p in (store / kind / "sha256").iterdir() if not p.name.endswith(".sig"))[0]


def _largest_chunk(store: Path) -> Path:
    return max((store / "chunks" / "sha256").iterdir(), key=lambda p: (p.stat().st_size, p.name))


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(data))


def _other_key(store: Path) -> Path:
    other = store.parent / f"{store.name}-other.pub"
    other.write_text(keys.public_key_pem(keys.generate_private_key().public_key()))
    return other


def _resign_index(store: Path, p: Published, change: Callable[[dict[str, Any]], None]) -> Path:
    """Rewrite the index as a hostile or broken publisher holding the real key would."""
    index = json.loads(_index(store).read_bytes())
    change(index)
    data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    _index(store).write_bytes(data)
    key = keys.load_private_key(p.key)
    (_index(store).parent / "index.json.sig").write_bytes(keys.sign(key, data))
    return p.public_key


def _path_like_chunks(store: Path, p: Published) -> Path:
    """A manifest, signed with the real key, whose chunk digests are paths."""
    key = keys.load_private_key(p.key)
    index = json.loads(_index(store).read_bytes())
    digest = index["variants"][0]["manifestDigest"].removeprefix("sha256:")
    manifest = json.loads(codec.decompress((store / "manifests" / "sha256" / digest).read_bytes()))
    for chunk in manifest["files"][0]["chunks"]:
        chunk["digest"] = "../../../../etc/passwd"
    plain = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    new = codec.sha256_hex(plain)
    (store / "manifests" / "sha256" / new).write_bytes(codec.compress(plain))
    (store / "manifests" / "sha256" / f"{new}.sig").write_bytes(keys.sign(key, plain))

    def point(idx: dict[str, Any]) -> None:
        idx["variants"][0]["manifestDigest"] = f"sha256:{new}"

    return _resign_index(store, p, point)


def _bomb(store: Path) -> None:
    """A chunk replaced by a zstd frame that declares 3 GiB."""
    magic = (0xFD2FB528).to_bytes(4, "little")
    header = b"\xe0" + (3 << 30).to_bytes(8, "little")  # single segment, 8-byte content size
    _largest_chunk(store).write_bytes(magic + header + b"\0" * 64)


Tamper = Callable[[Path, Published], Path]


def _acting(action: Callable[[Path], object]) -> Tamper:
    """A tampering that changes the store copy and verifies it with the real key."""

    def tamper(store: Path, published: Published) -> Path:
        action(store)
        return published.public_key

    return tamper


def _drop_index_signature(store: Path) -> None:
    (_index(store).parent / "index.json.sig").unlink()


def _edit_index(store: Path) -> None:
    _index(store).write_bytes(_index(store).read_bytes().replace(b'"fileBytes":', b'"fileBytes":1'))


def _garbage_index_signature(store: Path) -> None:
    (_index(store).parent / "index.json.sig").write_bytes(b"\x01\x02garbage")


def _truncate_chunk(store: Path) -> None:
    chunk = _largest_chunk(store)
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])


def _drop_manifest_signature(store: Path) -> None:
    Path(f"{_first(store, 'manifests')}.sig").unlink()


TAMPERING: dict[str, tuple[str, Tamper]] = {
    "index-signature-missing": ("index.json.sig deleted", _acting(_drop_index_signature)),
    "index-signed-by-another-key": (
        "verified with a key that did not sign it",
        lambda s, p: _other_key(s),
    ),
    "index-edited-after-signing": (
        "a measurement in index.json changed after signing",
        _acting(_edit_index),
    ),
    "index-signature-garbage": (
        "index.json.sig holds random bytes",
        _acting(_garbage_index_signature),
    ),
    "manifest-flipped-bit": (
        "one bit of a manifest flipped",
        _acting(lambda s: _flip(_first(s, "manifests"), 40)),
    ),
    "manifest-missing": ("a manifest deleted", _acting(lambda s: _first(s, "manifests").unlink())),
    "manifest-signature-missing": (
        "a manifest's .sig deleted",
        _acting(_drop_manifest_signature),
    ),
    "chunk-flipped-bit": (
        "one bit of a chunk flipped",
        _acting(lambda s: _flip(_largest_chunk(s), 100)),
    ),
    "chunk-truncated": ("a chunk cut in half", _acting(_truncate_chunk)),
    "chunk-missing": ("a chunk deleted", _acting(lambda s: _largest_chunk(s).unlink())),
    "chunk-decompression-bomb": (
        "a chunk replaced by a zstd frame declaring 3 GiB",
        _acting(_bomb),
    ),
    "manifest-path-like-chunk-names": (
        "chunk names ../../../../etc/passwd in a manifest signed with the right key",
        _path_like_chunks,
    ),
    "index-path-like-manifest-digest": (
        "manifestDigest sha256:../../etc/passwd in an index signed with the right key",
        lambda s, p: _resign_index(
            s, p, lambda i: i["variants"][0].update(manifestDigest="sha256:../../etc/passwd")
        ),
    ),
    "index-claims-another-version": (
        "models/m/1.0/index.json saying version 9.9, signed with the right key",
        lambda s, p: _resign_index(s, p, lambda i: i.update(version="9.9")),
    ),
}


# ----- deployments the operator must refuse to roll out -----------------------------------------


def _deployment(h: Healthy, name: str, **spec: Any) -> dict[str, Any]:
    root, public_key = h.store
    body: dict[str, Any] = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "name": "m",
                "version": "1.0",
                "store": {"url": f"file://{root}", "publicKey": public_key},
            },
            "nodeSelector": {"matchLabels": {"corpus": "true"}},
            "strategy": {"minReadySeconds": 0},
        },
    }
    for path, value in spec.items():
        target = body["spec"]
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return body


def _no_such_dir(h: Healthy) -> dict[str, Any]:
    return _deployment(h, "store-dir-missing", **{"model.store.url": f"file://{h.store[0]}-gone"})


Document = Callable[[Healthy], dict[str, Any]]
DEPLOYMENTS: dict[str, tuple[str, Document]] = {
    "version-does-not-exist": (
        "spec.model.version 9.9, which the store does not have",
        lambda h: _deployment(h, "version-missing", **{"model.version": "9.9"}),
    ),
    "model-does-not-exist": (
        "spec.model.name of a model the store does not have",
        lambda h: _deployment(h, "model-missing", **{"model.name": "nosuchmodel"}),
    ),
    "signed-by-another-key": (
        "spec.model.store.publicKey of another key",
        lambda h: _deployment(
            h,
            "wrong-key",
            **{
                "model.store.publicKey": keys.public_key_pem(
                    keys.generate_private_key().public_key()
                )
            },
        ),
    ),
    "public-key-not-a-key": (
        "spec.model.store.publicKey that is not a key",
        lambda h: _deployment(h, "garbage-key", **{"model.store.publicKey": "not-a-key"}),
    ),
    "no-public-key": (
        "no spec.model.store.publicKey and no default key for the operator",
        lambda h: _deployment(h, "no-key", **{"model.store.publicKey": ""}),
    ),
    "store-unreachable": (
        "a store URL nobody listens on",
        lambda h: _deployment(h, "unreachable", **{"model.store.url": "http://127.0.0.1:9/store"}),
    ),
    "store-directory-missing": ("a file:// store that does not exist", _no_such_dir),
    "selector-matches-nothing": (
        "a nodeSelector no node matches",
        lambda h: _deployment(
            h, "selects-nothing", nodeSelector={"matchLabels": {"rack": "nowhere"}}
        ),
    ),
    "pinned-variant-not-in-release": (
        "every node pinned to a variant the release does not have",
        lambda h: _deployment(
            h,
            "pinned-missing",
            **{"selection.pins": [{"nodeSelector": {}, "variant": "fp64-tpu"}]},
        ),
    ),
    "allowed-variants-none-in-release": (
        "allowedVariants naming only variants the release does not have",
        lambda h: _deployment(h, "allowed-none", **{"selection.allowedVariants": ["tpu-int4"]}),
    ),
}


def _window(h: Healthy, name: str, zone: str) -> dict[str, Any]:
    window = {"startTime": "02:00", "endTime": "04:00", "timeZone": zone}
    return _deployment(h, name, **{"updatePolicy.window": window})


DEPLOYMENTS.update(
    {
        "window-time-zone-mars": (
            "an update window in time zone Mars/Olympus",
            lambda h: _window(h, "zone-mars", "Mars/Olympus"),
        ),
        "window-time-zone-utc-offset": (
            "an update window in time zone UTC+2 (an offset, not a zone)",
            lambda h: _window(h, "zone-offset", "UTC+2"),
        ),
        "window-time-zone-misspelled": (
            "an update window in time zone Europe/Berln",
            lambda h: _window(h, "zone-typo", "Europe/Berln"),
        ),
    }
)


# ----- deployments the operator rolls out with a warning (on the odd node) ----------------------

ODD_NODE = "corpus-odd"
ODD_LABELS = {"corpus-odd": "true"}


def _odd(h: Healthy, name: str, **spec: Any) -> dict[str, Any]:
    return _deployment(h, name, nodeSelector={"matchLabels": ODD_LABELS}, **spec)


def _pins(*pairs: tuple[dict[str, str], str]) -> list[dict[str, Any]]:
    return [{"nodeSelector": {"matchLabels": labels}, "variant": v} for labels, v in pairs]


WARNINGS: dict[str, tuple[str, Document]] = {
    "canary-matches-no-node": (
        "a canarySelector that matches none of the selected nodes",
        lambda h: _odd(
            h, "canary-nowhere", **{"strategy.canarySelector": {"matchLabels": {"ring": "canary"}}}
        ),
    ),
    "duplicate-pins": (
        "the same pin twice",
        lambda h: _odd(
            h,
            "pins-twice",
            **{"selection.pins": _pins(({"rack": "lab"}, "fp32"), ({"rack": "lab"}, "fp32"))},
        ),
    ),
    "contradictory-pins": (
        "two pins of the same nodes to different variants",
        lambda h: _odd(
            h,
            "pins-clash",
            **{"selection.pins": _pins(({"rack": "lab"}, "fp32"), ({"rack": "lab"}, "int8"))},
        ),
    ),
    "pin-shadowed-by-pin-on-every-node": (
        "a pin after a pin that selects every node",
        lambda h: _odd(
            h, "pins-shadowed", **{"selection.pins": _pins(({}, "fp32"), ({"rack": "lab"}, "int8"))}
        ),
    ),
}


def wait_warning(kubectl: Kubectl, namespace: str, name: str, timeout: float = 60.0) -> str:
    """The deployment's Warning condition, once the operator has set it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = observe(kubectl, namespace, name)
        found = [c for c in status.get("conditions", []) if c["type"] == "Warning"]
        if found:
            return f"Warning={found[0]['status']} {found[0]['reason']}: {found[0]['message']}"
        time.sleep(0.5)
    raise AssertionError(f"no Warning condition on {name}: {status}")


# ----- agents' reports the apiserver accepts and the operator cannot use ------------------------


def _report(**model: Any) -> dict[str, Any]:
    """A status for the odd node whose report on the `odd` deployment is Ready, with `model`."""
    now = datetime.now(UTC)
    entry = {
        "name": "corpus/odd",
        "phase": "Ready",
        "version": "1.0",
        "variant": "fp32",
        "activeVersion": "1.0",
        "activeVariant": "fp32",
        "readySince": rfc3339(now),
        "lastTransitionTime": rfc3339(now),
        **model,
    }
    return {"heartbeatTime": rfc3339(now), "models": [entry]}


def _in(hours: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(hours=hours))


REPORTS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "ready-since-next-year": (
        "readySince a year after the report was received",
        lambda: _report(readySince=_in(24 * 365)),
    ),
    "heartbeat-tomorrow": (
        "heartbeatTime a day after the report was received",
        lambda: {**_report(), "heartbeatTime": _in(24)},
    ),
    "transition-in-three-hours": (
        "lastTransitionTime three hours after the report was received",
        lambda: _report(lastTransitionTime=_in(3)),
    ),
    "ready-since-february-30": (
        "readySince on February 30 (the right shape, not a date)",
        lambda: _report(readySince="2026-02-30T10:00:00Z"),
    ),
    "hardware-time-zone-unknown": (
        "hardware.timeZone Mars/Olympus",
        lambda: {**_report(), "hardware": {"timeZone": "Mars/Olympus", "memoryBytes": 1 << 32}},
    ),
}
"""Reports whose times in the future are absolute here: a recorded message must not depend on
when the corpus runs, so `check` replaces times and durations (see the test)."""


# ----- the healthy deployment -------------------------------------------------------------------


def start_healthy(kubectl: Kubectl, namespace: str, store: tuple[Path, str]) -> Healthy:
    """Label the corpus nodes, apply a deployment over them, wait until it is Ready."""
    nodes = [f"corpus-{i}" for i in range(3)]
    kubectl("label", "node", *nodes, "corpus=true", "--overwrite")
    healthy = Healthy(namespace, "healthy", store)
    body = _deployment(healthy, "healthy", priority=1000)
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, found = observe(kubectl, namespace, "healthy")
        if status.get("phase") == "Ready" and len(found) == len(nodes):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"healthy deployment not Ready: {status}")
    time.sleep(2)  # a few replans: the status must not change any more
    healthy.before = observe(kubectl, namespace, "healthy")
    return healthy


def observe(kubectl: Kubectl, namespace: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment's status and its EdgeNode entries."""
    out = kubectl("get", "mdep", name, "-n", namespace, "-o", "json", check=False)
    status = json.loads(out.stdout).get("status", {}) if out.returncode == 0 else {}
    return status, entries(kubectl, f"{namespace}/{name}")


def entries(kubectl: Kubectl, key: str) -> dict[str, Any]:
    listing = json.loads(kubectl("get", "edgenodes", "-o", "json").stdout)
    return {
        item["metadata"]["name"]: entry
        for item in listing["items"]
        for entry in item.get("spec", {}).get("models", [])
        if entry["name"] == key
    }


def wait_refusal(kubectl: Kubectl, namespace: str, name: str, timeout: float = 60.0) -> str:
    """What the deployment's status says once the operator has looked at it."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, _ = observe(kubectl, namespace, name)
        if status.get("observedGeneration") and status.get("phase") != "Progressing":
            break
        time.sleep(0.5)
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    stalled = conditions.get("Stalled", {})
    if stalled.get("status") == "True" and not status.get("phase"):
        return f"Stalled={stalled['status']} {stalled['reason']}: {stalled['message']}"
    lines = [f"phase {status.get('phase')}: {status.get('message')}"]
    lines += [
        f"node {n['node']}: {n['reason']}: {n['message']}" for n in status.get("worstNodes", [])
    ]
    return "\n".join(lines)


# ----- a deployment at the size limits -----------------------------------------------------------


def _label_key(i: int) -> str:
    """A label key of 317 characters: a 253-character DNS prefix, '/', a 63-character name."""
    prefix = ".".join([f"{i:03d}" + "p" * 59] * 4)[:253].rstrip(".")
    return f"{prefix}/{'n' * 60}{i:03d}"


def _value(i: int) -> str:
    return f"v{i:03d}" + "x" * 59


LARGEST_LABELS = {_label_key(i): _value(i) for i in range(64)}
"""The labels the largest deployment's nodeSelector asks for (the odd node is given them)."""


def _absent(i: int, values: int) -> dict[str, Any]:
    return {
        "key": _label_key(100 + i),
        "operator": "NotIn",
        "values": [_value(j) for j in range(values)],
    }


def _small_selector(i: int) -> dict[str, Any]:
    """4 labels no node has, 2 expressions: the most a pin or the canary selector may have."""
    labels = {_label_key(200 + 4 * i + j): _value(j) for j in range(4)}
    return {
        "matchLabels": labels,
        "matchExpressions": [_absent(300 + 2 * i + j, 8) for j in range(2)],
    }


def largest_deployment(h: Healthy) -> dict[str, Any]:
    """A deployment on the odd node with every list and map of its spec at the most the CRD
    allows, strings at their longest where the rollout does not need a real value."""
    steps = [{"name": f"s{i:02d}-" + "x" * 59, "setNodePercent": 100} for i in range(64)]
    allowed = ["fp32", *(f"v{i:02d}-" + "x" * 59 for i in range(31))]
    selector = {
        "matchLabels": LARGEST_LABELS,
        "matchExpressions": [_absent(i, 64) for i in range(16)],
    }
    criteria = [{"thresholdPercentage": 100, "minNumberOfExecutedNodes": 1_000_000}] * 8
    return _deployment(
        h,
        "l" * 253,
        nodeSelector=selector,
        **{
            "selection.pins": [
                {"nodeSelector": _small_selector(i), "variant": "v" * 63} for i in range(16)
            ],
            "selection.allowedVariants": allowed,
            "strategy.steps": steps,
            "strategy.canarySelector": _small_selector(16),
            "strategy.approved": {"version": "9" * 128, "throughStep": 64},
            "abort.criteria": criteria,
            "updatePolicy.window": {
                "startTime": "00:00",
                "endTime": "23:59",
                "timeZone": "America/Argentina/ComodRivadavia",
            },
        },
    )
