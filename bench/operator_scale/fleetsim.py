"""A fast scripted fleet for the scale benchmark: thousands of Nodes and EdgeNodes on a real
apiserver, agents played by one watch and a pool of status writers.

Unlike tests/integration/reporter.py (which lists every EdgeNode each tick), this one watches
EdgeNodes and answers each new entry with `Downloading` at once and `Ready` after `delay`
seconds, the way agents report, so 10,000 nodes stay cheap to play. It also measures the
apiserver's raw patch throughput with the same client library the operator writes with.
Everything it starts stops in `close()`.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from edge_rollout.api.edgenode import Hardware
from edge_rollout.core.conditions import rfc3339
from edge_rollout.testing.controlplane import ControlPlane

GROUP, VERSION = "edgerollout.dev", "v1alpha1"
EDGENODES = f"/apis/{GROUP}/{VERSION}/edgenodes"
TOKEN = "edge-rollout-admin"
WRITERS = 8
WATCH_SECONDS = 5
"""The agents' watch is renewed this often (from where it was), so it stops soon after close()."""


def utcnow() -> str:
    import datetime as dt

    return rfc3339(dt.datetime.now(dt.UTC))


class Api:
    """Raw HTTPS to the apiserver: one keep-alive session per thread."""

    def __init__(self, plane: ControlPlane) -> None:
        self.url = plane.url
        config = json.loads(plane.kubeconfig.read_text())
        self.ca = str(config["clusters"][0]["cluster"]["certificate-authority"])
        self._local = threading.local()

    def session(self) -> requests.Session:
        found: requests.Session | None = getattr(self._local, "session", None)
        if found is None:
            found = requests.Session()
            found.headers["Authorization"] = f"Bearer {TOKEN}"
            found.verify = self.ca
            found.trust_env = False  # $REQUESTS_CA_BUNDLE would override `verify`
            self._local.session = found
        return found

    def call(self, method: str, path: str, body: Any = None, content: str = "") -> Any:
        headers = {"Content-Type": content} if content else {}
        data = json.dumps(body) if body is not None else None
        for attempt in range(20):
            try:
                response = self.session().request(
                    method, self.url + path, data=data, headers=headers, timeout=60
                )
            except requests.ConnectionError:
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code >= 400 and response.status_code != 409:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
            return response.json() if response.content else None
        raise RuntimeError(f"{method} {path}: apiserver kept failing")


def node_name(i: int) -> str:
    return f"edge-{i:05d}"


def create_fleet(api: Api, hardware: dict[str, Hardware]) -> float:
    """Nodes (labelled edge=true) and EdgeNodes with a hardware report; seconds it took."""
    started = time.monotonic()

    def one(name: str) -> None:
        kind = _kind(hardware[name])
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"edge": "true", "hw": kind}},
        }
        api.call("POST", "/api/v1/nodes", node)
        edgenode = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeNode",
            "metadata": {"name": name},
        }
        api.call("POST", EDGENODES, edgenode)
        status = {
            "status": {
                "hardware": hardware[name].model_dump(
                    mode="json", by_alias=True, exclude_none=True
                ),
                "heartbeatTime": utcnow(),
            }
        }
        api.call("PATCH", f"{EDGENODES}/{name}/status", status, "application/merge-patch+json")

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(one, hardware))
    return time.monotonic() - started


def delete_fleet(api: Api, names: Iterable[str]) -> None:
    def one(name: str) -> None:
        with contextlib.suppress(RuntimeError):
            api.call("DELETE", f"/api/v1/nodes/{name}")
        with contextlib.suppress(RuntimeError):
            api.call("DELETE", f"{EDGENODES}/{name}")

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(one, names))


def _kind(hw: Hardware) -> str:
    return hw.accelerators[0].accelerator_class if hw.accelerators else "cpu"


@dataclass
class Seen:
    """What the watch saw of one deployment's entries."""

    first_entry: float = 0.0
    last_entry: float = 0.0
    entries: int = 0
    spec_events: int = 0
    removed: int = 0
    last_removed: float = 0.0


@dataclass
class Agents:
    """Plays the agents of `names`: one watch, a heap of pending reports, a pool of writers."""

    api: Api
    names: set[str]
    key: str
    """The deployment key (`ns/name`) whose entries are answered."""
    delay: float = 2.0
    seen: Seen = field(default_factory=Seen)
    reported: dict[str, tuple[str, str]] = field(default_factory=dict)
    """node -> (version, variant) its entry asks for."""
    ready: dict[str, tuple[str, str]] = field(default_factory=dict)
    """node -> (version, variant) it has reported Ready on."""
    ready_reports: int = 0
    _pending: list[tuple[float, str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(WRITERS))

    def start(self) -> None:
        listing = self.api.call("GET", f"{EDGENODES}?limit=1")
        version = listing["metadata"]["resourceVersion"]
        for target in (lambda: self._watch(version), self._timer):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()  # the watch ends within WATCH_SECONDS (closing it would block)
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _watch(self, version: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._stream(version)
            except (requests.RequestException, ValueError, AttributeError):
                if self._stop.is_set():
                    return  # close() cut the stream

    def _stream(self, version: str) -> str:
        path = (
            f"{EDGENODES}?watch=1&allowWatchBookmarks=true&resourceVersion={version}"
            f"&timeoutSeconds={WATCH_SECONDS}"
        )
        response = self.api.session().get(self.api.url + path, stream=True, timeout=(10, 60))
        for line in response.iter_lines():
            if self._stop.is_set():
                break
            event = json.loads(line)
            obj = event.get("object", {})
            version = obj.get("metadata", {}).get("resourceVersion", version)
            if event.get("type") in ("ADDED", "MODIFIED"):
                self._observe(obj)
            if event.get("type") == "ERROR":
                version = self.api.call("GET", f"{EDGENODES}?limit=1")["metadata"][
                    "resourceVersion"
                ]
                break
        return version

    def _observe(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name not in self.names:
            return
        entry = next(
            (m for m in (obj.get("spec") or {}).get("models", []) if m["name"] == self.key), None
        )
        now = time.monotonic()
        with self._lock:
            had = self.reported.get(name)
            if entry is None:
                if had is not None:
                    del self.reported[name]
                    self.seen.removed += 1
                    self.seen.last_removed = now
                return
            pair = (entry["version"], entry["variant"])
            if had == pair:
                return
            if had is None:
                self.seen.entries += 1
                self.seen.first_entry = self.seen.first_entry or now
                self.seen.last_entry = now
            self.seen.spec_events += 1
            self.reported[name] = pair
            heapq.heappush(self._pending, (now + self.delay, name, *pair))
        self._pool.submit(self._report, name, pair, "Downloading")

    def _timer(self) -> None:
        while not self._stop.is_set():
            due = []
            with self._lock:
                now = time.monotonic()
                while self._pending and self._pending[0][0] <= now:
                    _, name, version, variant = heapq.heappop(self._pending)
                    if self.reported.get(name) == (version, variant):
                        due.append((name, (version, variant)))
            for name, pair in due:
                self._pool.submit(self._report, name, pair, "Ready")
            self._stop.wait(0.05)

    def _report(self, name: str, pair: tuple[str, str], phase: str) -> None:
        version, variant = pair
        model: dict[str, Any] = {
            "name": self.key,
            "phase": phase,
            "version": version,
            "variant": variant,
        }
        if phase == "Ready":
            model |= {
                "activeVersion": version,
                "activeVariant": variant,
                "readySince": utcnow(),
                "bytesFetched": 1000,
                "bytesReused": 9000,
            }
        body = {"status": {"models": [model], "heartbeatTime": utcnow()}}
        with contextlib.suppress(RuntimeError):
            self.api.call(
                "PATCH", f"{EDGENODES}/{name}/status", body, "application/merge-patch+json"
            )
            if phase == "Ready":
                with self._lock:
                    self.ready[name] = pair
                    self.ready_reports += 1

    def progress(self) -> tuple[int, int]:
        """(entries changed, Ready reports) so far: it moves while a rollout does."""
        with self._lock:
            return self.seen.spec_events, self.ready_reports

    def unavailable(self, version: str) -> int:
        """Nodes asked for `version` that are not serving it yet (what maxUnavailable bounds)."""
        with self._lock:
            return sum(
                1
                for name, pair in self.reported.items()
                if pair[0] == version and self.ready.get(name) != pair
            )

    def serving(self, version: str) -> int:
        with self._lock:
            return sum(1 for pair in self.ready.values() if pair[0] == version)


def raw_patch_rate(plane: ControlPlane, names: list[str], threads: int = 1) -> float:
    """Server-side applies of one EdgeNode entry per second, with the kubernetes client the
    operator writes with, `threads` at a time (the operator applies one after another)."""
    from edge_rollout.kube import client as kube_client
    from edge_rollout.kube import edgenodes as kube_edgenodes

    def apply_all(chunk: list[str]) -> None:
        objects = kube_client.custom_objects(kube_client.api_client(str(plane.kubeconfig)))
        for name in chunk:
            entry = _raw_entry(name)
            kube_edgenodes.apply_entry(objects, name, "bench/raw", entry)

    chunks = [names[i::threads] for i in range(threads)]
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(apply_all, chunks))
    rate = len(names) / (time.monotonic() - started)
    objects = kube_client.custom_objects(kube_client.api_client(str(plane.kubeconfig)))
    for name in names:  # remove the entries again (applying nothing as that manager)
        kube_edgenodes.apply_entry(objects, name, "bench/raw", None)
    return rate


def _raw_entry(name: str) -> Any:
    from edge_rollout.api.edgenode import DesiredModel

    return DesiredModel(
        name="bench/raw",
        model="m",
        version="1.0",
        variant="fp32",
        store_url="file:///tmp/none",
        requested_at=utcnow(),
        memory_bytes=len(name),
    )


@contextlib.contextmanager
def watching(api: Api, names: set[str], key: str, delay: float) -> Iterator[Agents]:
    agents = Agents(api, names, key, delay)
    agents.start()
    try:
        yield agents
    finally:
        agents.close()


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False
