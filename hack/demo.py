"""The README demo: a real model rolling out to six edge nodes with different hardware.

A local control plane (etcd + kube-apiserver), nginx serving a signed store, the operator, and six
edge agents (NPU, GPU and CPU profiles, 1 to 16 GiB). It publishes magika's real ONNX classifier
as 1.0.0 and rolls it out (which node got which variant and why), then a fine-tuned 1.1.0 in waves
(bytes fetched vs a full download), then a broken 1.2.0 that the nodes' golden-vector checks catch:
the rollout aborts and rolls back on its own. Everything runs on loopback under .demo/ and is
stopped at the end or on Ctrl-C. `--no-wait` ends after the tour instead of waiting for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import onnx
import yaml

from edge_rollout.api.release import Release
from edge_rollout.testing import models
from edge_rollout.testing.controlplane import ControlPlane, stop_process
from edge_rollout.testing.hardware import DEMO_PROFILES as PROFILES
from edge_rollout.testing.nginx import NginxServer

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CANARY = "edge-cpu-1"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


class Demo:
    """The running pieces and small helpers to drive them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.plane = ControlPlane(workdir / "cluster")
        self.store = workdir / "store"
        self.key = workdir / "keys" / "store"
        self.url = ""
        self.env = dict(os.environ)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """The real kubectl; $KUBECONFIG (not a flag) so plugins resolve too."""
        result = subprocess.run(
            [str(self.plane.kubectl), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=self.env,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout + (result.stderr if not check else "")

    def run(self, *args: str) -> str:
        result = subprocess.run(args, capture_output=True, text=True, check=False, env=self.env)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    @contextmanager
    def process(self, name: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_process(proc)
            log.close()

    def status(self) -> dict[str, Any]:
        out = self.kubectl("get", "mdep", "magika", "-n", "default", "-o", "json")
        status: dict[str, Any] = json.loads(out).get("status", {})
        return status

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(1)
        raise SystemExit(f"timed out waiting for {what}; logs are in {self.workdir / 'logs'}")

    def edgenodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "edgenodes", "-o", "json"))[
            "items"
        ]
        return sorted(items, key=lambda i: i["metadata"]["name"])


def start(demo: Demo, stack: ExitStack) -> None:
    say("Starting etcd + kube-apiserver on loopback (binaries from the cache)")
    stack.enter_context(demo.plane)
    demo.env["KUBECONFIG"] = str(demo.plane.kubeconfig)
    demo.env["PATH"] = f"{BIN}{os.pathsep}{demo.plane.bin_dir}{os.pathsep}{demo.env['PATH']}"
    print(f"kube-apiserver at {demo.plane.url}")
    demo.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    demo.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modeldeployments.edgerollout.dev",
        "crd/edgenodes.edgerollout.dev",
    )
    print("CRDs installed (generated from the pydantic API models)")
    say("Serving the model store with nginx, signing key from `edge-rollout keygen`")
    nginx = stack.enter_context(NginxServer(demo.store, demo.workdir / "nginx"))
    demo.url = nginx.url
    demo.key.parent.mkdir(parents=True)
    print(demo.run(str(BIN / "edge-rollout"), "keygen", str(demo.key)).splitlines()[0])
    print(f"store at {demo.url}")
    say("Starting the operator and six edge agents (hardware profiles: 2 NPU, 2 GPU, 2 CPU)")
    demo.env["EDGE_ROLLOUT_REPLAN_SECONDS"] = "2"
    stack.enter_context(
        demo.process("operator", str(BIN / "edge-rollout"), "operator", "--standalone")
    )
    for node, profile in PROFILES.items():
        start_agent(demo, stack, node, profile)
    demo.wait_for(
        "six EdgeNodes with hardware",
        lambda: sum(1 for n in demo.edgenodes() if n.get("status", {}).get("heartbeatTime")) == 6,
    )
    print(demo.kubectl("get", "edgenodes", "-o", "wide"), end="")


def start_agent(demo: Demo, stack: ExitStack, node: str, profile: dict[str, Any]) -> None:
    labels = {"edge": "true", **({"ring": "canary"} if node == CANARY else {})}
    demo.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}}
        ),
    )
    path = demo.workdir / "profiles" / f"{node}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile))
    stack.enter_context(
        demo.process(
            f"agent-{node}",
            str(BIN / "edge-rollout-agent"),
            "--node",
            node,
            "--kubeconfig",
            str(demo.plane.kubeconfig),
            "--data-dir",
            str(demo.workdir / node),
            "--hardware-profile",
            str(path),
            "--metrics-port",
            "0",
            "--heartbeat",
            "5",
        )
    )


def publish(demo: Demo, model: Path, version: str, *extra: str) -> None:
    say(f"edge-rollout publish {model.name} --version {version} {' '.join(extra)}".rstrip())
    result = subprocess.run(
        [
            str(BIN / "edge-rollout"),
            "publish",
            str(model),
            "--name",
            "magika",
            "--version",
            version,
            "--store",
            str(demo.store),
            "--key",
            str(demo.key),
            "--store-url",
            demo.url,
            "--runs",
            "10",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**demo.env, "COLUMNS": "110"},
    )
    if result.returncode != 0:
        raise SystemExit(f"publish failed:\n{result.stderr}")
    index = demo.store / "models" / "magika" / version / "index.json"
    for v in Release.model_validate_json(index.read_bytes()).variants:
        m = v.measurements
        print(
            f"  {v.name:5} {m.file_bytes / 1e6:5.2f} MB  p50 {m.latency_p50_ms:6.2f} ms  "
            f"peak {m.peak_memory_bytes / 1e6:5.1f} MB  cosine vs fp32 "
            f"{m.agreement.cosine:.6f}"
        )


def apply(demo: Demo, version: str, steps: list[dict[str, Any]]) -> None:
    public_key = (demo.key.parent / "store.pub").read_text()
    document = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "magika", "namespace": "default"},
        "spec": {
            "model": {
                "name": "magika",
                "version": version,
                "store": {"url": demo.url, "publicKey": public_key},
            },
            "nodeSelector": {"matchLabels": {"edge": "true"}},
            "selection": {"prefer": "size"},
            "strategy": {
                "canarySelector": {"matchLabels": {"ring": "canary"}},
                "steps": steps,
                "maxUnavailable": 2,
                "minReadySeconds": 3,
                "progressDeadlineSeconds": 120,
            },
            "abort": {
                "criteria": [
                    {"failureType": "All", "thresholdPercentage": 50, "minNumberOfExecutedNodes": 1}
                ],
                "failureHandlingPolicy": "Rollback",
            },
        },
    }
    print(demo.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document)), end="")


def watch(demo: Demo, version: str, until: tuple[str, ...]) -> dict[str, Any]:
    """Print a line whenever the rollout changes, until its phase is one of `until`."""
    last = ""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = demo.status()
        line = progress_line(demo, status)
        if line != last:
            print(f"  {time.strftime('%H:%M:%S')} {line}", flush=True)
            last = line
        if status.get("targetVersion") == version and status.get("phase") in until:
            return status
        time.sleep(1)
    raise SystemExit(f"rollout of {version} did not finish; logs are in {demo.workdir / 'logs'}")


def progress_line(demo: Demo, status: dict[str, Any]) -> str:
    nodes = []
    for item in demo.edgenodes():
        reported = {m["name"]: m for m in item.get("status", {}).get("models", [])}
        model = reported.get("default/magika", {})
        active = model.get("activeVersion", "-")
        nodes.append(
            f"{item['metadata']['name'].removeprefix('edge-')}:{active}/{model.get('phase', '-')}"
        )
    return f"[{status.get('phase', '...')}] step {status.get('currentStepIndex', 0)}: " + " ".join(
        nodes
    )


def variants_table(demo: Demo) -> None:
    print(
        f"  {'NODE':12} {'HARDWARE':16} {'VARIANT':8} {'ACTIVE':8} {'FETCHED':>10} "
        f"{'REUSED':>10}  LATENCY p50"
    )
    for item in demo.edgenodes():
        hw = item["status"]["hardware"]
        spec = {m["name"]: m for m in item["spec"].get("models", [])}.get("default/magika", {})
        got = {m["name"]: m for m in item["status"].get("models", [])}.get("default/magika", {})
        latency = (got.get("latency") or {}).get("p50Ms", 0.0)
        print(
            f"  {item['metadata']['name']:12} {hw.get('profile', ''):16} "
            f"{spec.get('variant', '-'):8} {got.get('activeVersion', '-'):8} "
            f"{got.get('bytesFetched', 0):>10,} {got.get('bytesReused', 0):>10,}  "
            f"{latency:.2f} ms"
        )


def tour(demo: Demo, model: Path) -> None:
    publish(demo, model, "1.0.0")
    say("kubectl apply: ModelDeployment magika 1.0.0 (prefer: size, canary first)")
    apply(demo, "1.0.0", [{"setNodeCount": 1}, {"pause": {"duration": "5s"}}])
    status = watch(demo, "1.0.0", ("Ready", "Degraded"))
    say("Which node got which variant (the operator's choice per hardware)")
    variants_table(demo)
    explain(demo, "edge-gpu-1")

    finetuned = demo.workdir / "magika-1.1.0.onnx"
    onnx.save(models.head_only(onnx.load(str(model)), scale=2e-2), str(finetuned))
    publish(demo, finetuned, "1.1.0")
    say("Rolling out 1.1.0 (a fine-tuned head) in waves: canary, then 50%, then everyone")
    apply(
        demo,
        "1.1.0",
        [
            {"setNodeCount": 1},
            {"pause": {"duration": "5s"}},
            {"setNodePercent": 50},
            {"pause": {"duration": "5s"}},
        ],
    )
    status = watch(demo, "1.1.0", ("Ready", "Degraded"))
    variants_table(demo)
    full = status["bytesFetched"] + status["bytesReused"]
    print(
        f"\n  fleet fetched {status['bytesFetched']:,} bytes of {full:,} "
        f"({100 * status['bytesFetched'] / max(full, 1):.1f}%): only the changed tensors"
    )

    broken = demo.workdir / "magika-1.2.0.onnx"
    onnx.save(models.head_only(onnx.load(str(model)), scale=3.0, seed=7), str(broken))
    publish(demo, broken, "1.2.0", "--golden-from", "1.1.0")
    say(
        "Rolling out 1.2.0: its head is broken; nodes check 1.1.0's golden vectors before "
        "activating"
    )
    apply(demo, "1.2.0", [{"setNodeCount": 2}, {"pause": {"duration": "30s"}}])
    status = watch(demo, "1.2.0", ("RolledBack", "Failed", "Ready", "Degraded"))
    print(f"\n  phase {status['phase']}: {status.get('abortReason', '')}")
    say("Warning events on the ModelDeployment (kubectl get events)")
    print(
        demo.kubectl(
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "type=Warning,involvedObject.name=magika",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ),
        end="",
    )
    demo.wait_for(
        "every node back on 1.1.0",
        lambda: all(
            {m["name"]: m for m in n["status"].get("models", [])}.get("default/magika", {}).get(
                "activeVersion"
            )
            == "1.1.0"
            for n in demo.edgenodes()
        ),
        timeout=120,
    )
    variants_table(demo)


def explain(demo: Demo, node: str) -> None:
    plugin = BIN / "kubectl-edge_rollout"
    if not plugin.exists():
        return
    say(f"kubectl edge-rollout why {node}")
    print(demo.kubectl("edge-rollout", "why", node, "magika", "-n", "default", check=False), end="")


def summary(demo: Demo, wait: bool) -> None:
    say("Summary")
    print(demo.kubectl("get", "mdep", "-A", "-o", "wide"), end="")
    say("Explore (while this runs)")
    print(
        f"  export KUBECONFIG={demo.plane.kubeconfig} PATH={BIN}:{demo.plane.bin_dir}:$PATH\n"
        "  kubectl get edgenodes -o wide\n"
        "  kubectl describe mdep magika\n"
        "  kubectl edge-rollout status magika\n"
        "  kubectl edge-rollout why edge-npu-1 magika\n"
        "  kubectl explain modeldeployment.spec.strategy\n"
        f"  logs: {demo.workdir / 'logs'}"
    )
    if wait and sys.stdin.isatty():
        say("Running; press Ctrl-C to stop and clean up")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    say("Stopping everything")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=REPO / ".demo")
    parser.add_argument("--no-wait", action="store_true", help="end after the tour")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    (args.workdir / "logs").mkdir(parents=True)
    started = time.monotonic()
    demo = Demo(args.workdir)
    model = models.magika_model_path(args.workdir / "magika-1.0.0.onnx")
    if isinstance(model, str):
        raise SystemExit(model)
    try:
        with ExitStack() as stack:
            start(demo, stack)
            tour(demo, model)
            summary(demo, wait=not args.no_wait)
    except KeyboardInterrupt:
        print("\ninterrupted; everything stopped")
        return
    print(f"demo finished in {time.monotonic() - started:.0f} s; nothing left running")


if __name__ == "__main__":
    main()
