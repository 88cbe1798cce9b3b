"""Test tiers by folder, and the real control plane shared by integration and e2e tests.

`control_plane` starts etcd + kube-apiserver once per session (binaries cached by
hack/build-binaries.sh); `crds_installed` applies crds/ and waits until they are Established.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from tests.support import REPO, Kubectl

TIERS = ("unit", "integration", "e2e", "cluster")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        group = shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def shared_fixture_group(item: pytest.Item) -> str | None:
    """Under `pytest -n N --dist loadgroup` (make test), the tests that share a module- or
    package-scoped fixture (the 3-node cluster, the demo's run, built images, a running operator)
    run in one worker, which makes it once: the group is where the fixture is defined."""
    info = getattr(item, "_fixtureinfo", None)
    used = [d[-1] for d in info.name2fixturedefs.values()] if info is not None else []
    for scope in ("package", "module"):  # the widest first: a package's modules stay together
        shared = sorted(d.baseid or "root" for d in used if d.scope == scope)
        if shared:
            return shared[0]
    return None


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real kube-apiserver + etcd on loopback; KUBECONFIG points at it for the session."""
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"))
    with plane:
        previous = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(plane.kubeconfig)
        try:
            yield plane
        finally:
            if previous is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def crds_installed(kubectl: Kubectl) -> None:
    """crds/ applied server-side and Established."""
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    crds = ("crd/modeldeployments.edgerollout.dev", "crd/edgenodes.edgerollout.dev")
    # Right after the apply a CRD may have no status.conditions yet, and `kubectl wait` then fails
    # at once ("accessor error: <nil>") instead of waiting: ask again until it waits for real.
    deadline = time.monotonic() + 60
    while True:
        waited = kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds, check=False)
        if waited.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"CRDs not Established within 60 s:\n{waited.stderr}")
        time.sleep(0.5)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test (namespaces never finish deleting without a controller). Its
    ModelDeployments are deleted after the test: an operator started later in the session (the
    next module's) would otherwise take them up again, on the same node names."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "modeldeployments.edgerollout.dev", "--all", "-n", name, "--wait=false",
            check=False)  # fmt: skip
