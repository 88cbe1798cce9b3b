"""A real 3-node cluster for the `cluster` tier: kubelets, containerd, the product's images.

`cluster` builds (or reuses) the operator and agent OCI archives, starts the cluster in its own
network namespace, imports the images into every node and removes everything once the tier is
done (package scope: its ~1.5 GB of daemons do not slow the tiers that run after it).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_rollout.testing.cluster import Cluster, ClusterError
from edge_rollout.testing.cluster_node import KUBELET_SYSCTLS
from edge_rollout.testing.cluster_story import (
    RELEASE,
    RELEASE_NAMESPACE,
    ClusterStore,
    PreparedStore,
    Store,
    install_release,
    prepare_store,
)
from edge_rollout.testing.images import ImageArchive, build_images
from tests.support import REPO

NODES = 3
HOST_SYSCTLS = (*KUBELET_SYSCTLS, "net/ipv4/ip_forward")
TIER = Path(__file__).parent
SETUP_SECONDS = 900
"""The first test of the tier builds images, starts the cluster and installs the chart."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TIER in item.path.parents and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SETUP_SECONDS))


@pytest.fixture(scope="package")
def product_images() -> dict[str, ImageArchive]:
    """build/images/{operator,agent}.oci.tar, rebuilt only when their inputs changed."""
    return build_images(REPO / "build" / "images")


@pytest.fixture(scope="package")
def host_sysctls() -> dict[str, str]:
    """The host's values of what the kubelet would change, and ip_forward, before any node ran."""
    return {key: Path("/proc/sys", key).read_text() for key in HOST_SYSCTLS}


@pytest.fixture(scope="package")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    product_images: dict[str, ImageArchive],
    host_sysctls: dict[str, str],
) -> Iterator[Cluster]:
    """3 Ready nodes (profiles npu, gpu, cpu, all `edge=true`) with the product images."""
    with Cluster(tmp_path_factory.mktemp("cluster"), nodes=NODES) as running:
        running.import_images(archive.path for archive in product_images.values())
        yield running


@pytest.fixture
def cluster_namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted after the test (the cluster's controllers finish it)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="package")
def prepared_store() -> PreparedStore:
    """magika 1.0.0, 1.1.0 and a broken 1.2.0, signed with a real key (build/cluster-story, cached
    by the publisher's code); the chart's store.publicKey is the key's public half."""
    return prepare_store(REPO / "build" / "cluster-story")


@pytest.fixture(scope="package")
def store(
    cluster: Cluster, prepared_store: PreparedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """nginx serving the prepared store inside the cluster's network namespace."""
    with ClusterStore(cluster, prepared_store, tmp_path_factory.mktemp("nginx")) as running:
        yield running


@pytest.fixture(scope="package")
def installed(
    cluster: Cluster, prepared_store: PreparedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The release, installed once for the tier and waited for; uninstalled at the end unless a
    test already did (tests/cluster/test_upgrade_uninstall.py)."""
    install_release(cluster, prepared_store.public_key, tmp_path_factory.mktemp("values"))
    yield RELEASE
    with contextlib.suppress(ClusterError):
        cluster.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", timeout=180)
