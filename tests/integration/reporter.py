"""A scripted stand-in for many agents: reports hardware and obeys EdgeNode specs.

Real agents load real models; this plays hundreds of them against the real apiserver so that
rollouts over a fleet can be tested in seconds. Each node reports Ready `delay` seconds after it
is asked for a version, or Failed for the `version/variant` pairs in `broken`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from edge_rollout.api.edgenode import Hardware
from edge_rollout.core.conditions import rfc3339
from edge_rollout.kube import client as kube_client

GROUP, VERSION, PLURAL = "edgerollout.dev", "v1alpha1", "edgenodes"


def utcnow() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


@dataclass
class ScriptedReporter:
    """Plays the agents of `hardware` nodes; call start() / stop()."""

    hardware: Mapping[str, Hardware]
    labels: Mapping[str, str] = field(default_factory=lambda: {"edge": "true"})
    """Labels of the Nodes it creates: give each test module its own, so that deployments other
    tests leave behind do not select its nodes."""
    delay: float = 0.5
    broken: set[str] = field(default_factory=set)
    interval: float = 0.3
    heartbeat: float = 30.0
    """Seconds between heartbeats, as a real agent sends them (a silent agent is NoAgent)."""
    _beat: float = 0.0
    asked: dict[tuple[str, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.api = kube_client.custom_objects(kube_client.api_client())
        self.core = kube_client.core(kube_client.api_client())
        self.register()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def register(self) -> None:
        """Create each Node (labelled edge=true) and report its hardware on its EdgeNode."""
        for name, hw in self.hardware.items():
            node = client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=dict(self.labels)))
            try:
                self.core.create_node(node)
            except ApiException as error:
                if error.status != 409:
                    raise
            self._ensure_edgenode(name)
            self._patch_status(
                name,
                {
                    "hardware": hw.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "heartbeatTime": rfc3339(utcnow()),
                },
            )

    def _ensure_edgenode(self, name: str) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EdgeNode", "metadata": {"name": name}}
        try:
            self.api.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        except ApiException as error:
            if error.status != 409:
                raise

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.api.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": status}
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            # The apiserver may be restarting; try again next tick.
            with contextlib.suppress(ApiException):
                self.tick()
            self._stop.wait(self.interval)

    def tick(self) -> None:
        listing: Any = self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        beat = time.monotonic() - self._beat >= self.heartbeat
        if beat:
            self._beat = time.monotonic()
        for item in listing["items"]:
            name = item["metadata"]["name"]
            if name not in self.hardware:
                continue
            models = self._models(item)
            status: dict[str, Any] = {} if models is None else {"models": models}
            if beat:
                status["heartbeatTime"] = rfc3339(utcnow())
            if status:
                self._patch_status(name, status)

    def _models(self, item: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The status models for this EdgeNode's spec, or None when nothing changed."""
        name = item["metadata"]["name"]
        reported = {m["name"]: m for m in (item.get("status") or {}).get("models", [])}
        wanted = (item.get("spec") or {}).get("models", [])
        models = [self._model(name, w, reported.get(w["name"])) for w in wanted]
        if models == list(reported.values()) or (not models and not reported):
            return None
        return models

    def _model(
        self, node: str, want: Mapping[str, Any], have: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        pair = f"{want['version']}/{want['variant']}"
        key = (node, f"{want['name']}@{pair}")
        now = time.monotonic()
        asked = self.asked.setdefault(key, now)
        active = dict(have or {"name": want["name"]})
        if (
            have
            and have.get("version") == want["version"]
            and have.get("variant") == want["variant"]
            and have["phase"] in ("Ready", "Failed")
        ):
            return active
        if now - asked < self.delay:
            return {
                **active,
                "phase": "Downloading",
                "version": want["version"],
                "variant": want["variant"],
            }
        if pair in self.broken:
            return {
                **active,
                "phase": "Failed",
                "version": want["version"],
                "variant": want["variant"],
                "lastError": {"reason": "TestVectorMismatch", "message": "output 0 differs"},
            }
        return {
            **active,
            "phase": "Ready",
            "version": want["version"],
            "variant": want["variant"],
            "activeVersion": want["version"],
            "activeVariant": want["variant"],
            "readySince": rfc3339(utcnow()),
            "bytesFetched": 1000,
            "bytesReused": 9000,
        }


def fleet_hardware(count: int, kinds: Iterable[str] = ("cpu", "gpu", "npu")) -> dict[str, Hardware]:
    from tests.unit.core.fixtures import hardware

    kinds = list(kinds)
    return {f"edge-{i:04d}": hardware(kinds[i % len(kinds)]) for i in range(count)}


def delete_nodes(names: Iterable[str]) -> None:
    core = client.CoreV1Api(kube_client.api_client())
    api = kube_client.custom_objects(kube_client.api_client())
    for name in names:
        with contextlib.suppress(ApiException):
            core.delete_node(name)
        with contextlib.suppress(ApiException):
            api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
