"""The README demo: a real control plane, the operator, and a ModelDeployment it reports on.

Run through `make demo`. Everything runs on loopback under .demo/ and is stopped on exit or Ctrl-C.
`--no-wait` ends right after the tour (what tests/e2e runs); otherwise it waits for Ctrl-C on a
terminal so you can explore with the printed kubectl commands.
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
from contextlib import contextmanager
from pathlib import Path

from edge_rollout.testing.controlplane import ControlPlane, stop_process

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "manifests" / "examples" / "modeldeployment.yaml"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.plane = ControlPlane(workdir / "cluster")

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(self.plane.kubectl), f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    @contextmanager
    def operator(self) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.workdir / "operator.log").open("wb")
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_rollout.cli.main", "operator", "--standalone"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_process(proc)
            log.close()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise SystemExit(f"timed out waiting for {what}; logs are in {self.workdir}")

    def observed(self) -> bool:
        out = self.kubectl("get", "mdep", "magika", "-n", "default", "-o", "json")
        return bool(json.loads(out).get("status", {}).get("observedGeneration"))


def run(workdir: Path, wait: bool) -> None:
    demo = Demo(workdir)
    say("Starting etcd + kube-apiserver on loopback (binaries from the cache)")
    with demo.plane:
        print(f"kube-apiserver at {demo.plane.url}")
        say("Installing the CRDs generated from the pydantic API models")
        print(demo.kubectl("apply", "--server-side", "-f", str(REPO / "crds")), end="")
        demo.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/modeldeployments.edgerollout.dev",
            "crd/edgenodes.edgerollout.dev",
        )
        say("Starting the operator (Kopf)")
        with demo.operator():
            say(f"Applying {EXAMPLE.relative_to(REPO)}")
            print(demo.kubectl("apply", "-f", str(EXAMPLE)), end="")
            demo.wait_for("the operator to observe the ModelDeployment", demo.observed)
            say("kubectl get modeldeployments")
            print(demo.kubectl("get", "modeldeployments", "-A", "-o", "wide"), end="")
            say("A ModelDeployment the apiserver refuses (a percentage over 100)")
            print(refused_example(demo))
            tour(demo, wait)


def refused_example(demo: Demo) -> str:
    bad = EXAMPLE.read_text().replace("setNodePercent: 25", "setNodePercent: 250")
    result = subprocess.run(
        [str(demo.plane.kubectl), f"--kubeconfig={demo.plane.kubeconfig}", "apply", "-f", "-"],
        input=bad,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stderr.strip()


def tour(demo: Demo, wait: bool) -> None:
    kubectl = f"{demo.plane.kubectl} --kubeconfig={demo.plane.kubeconfig}"
    say("Explore")
    print(
        f"  {kubectl} get mdep -A\n"
        f"  {kubectl} describe mdep magika\n"
        f"  {kubectl} explain modeldeployment.spec.strategy\n"
        f"  operator log: {demo.workdir / 'operator.log'}"
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
    args.workdir.mkdir(parents=True)
    run(args.workdir, wait=not args.no_wait)
    print("demo finished; nothing left running")


if __name__ == "__main__":
    main()
