"""The chart's store.trustedKeys reach the operator: rendered by the real helm into a ConfigMap of
`<id>.pub` files, mounted (a projected volume beside an existing Secret), and read from
$EDGE_ROLLOUT_STORE_TRUSTED_KEYS_DIR by the operator's release fetch (issue 14.7)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.store import keys, releases
from edge_rollout.store.releases import ReleaseRef, fetch_release
from tests.fixtures.stores import publish_files
from tests.integration.test_chart import CHART, helm_bin, one, template

__all__ = ["helm_bin"]

OLD, NEW = keys.generate_private_key(), keys.generate_private_key()
TRUSTED = [
    {"id": "release-2026", "publicKey": keys.public_key_pem(OLD.public_key())},
    {"id": "release-2027", "publicKey": keys.public_key_pem(NEW.public_key())},
]


def _values(*extra: str) -> list[str]:
    return ["--set-json", f"store.trustedKeys={json.dumps(TRUSTED)}", *extra]


def _pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(documents, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_trusted_keys_become_files_in_the_operators_key_directory(
    helm_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = template(helm_bin, *_values())
    data = one(documents, "ConfigMap", "store-key")["data"]
    assert sorted(data) == ["release-2026.pub", "release-2027.pub"]
    pod = _pod(documents)
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env[releases.KEYS_DIR_ENV] == "/etc/edge-rollout/store"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "store-key")
    assert mount["mountPath"] == env[releases.KEYS_DIR_ENV]
    # What the kubelet would mount, read by the operator for a deployment that names no key.
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setenv(releases.KEYS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(releases.KEY_ENV, raising=False)
    monkeypatch.delenv(releases.KEY_FILE_ENV, raising=False)
    store = tmp_path / "store"
    publish_files(store, NEW, "m", "2.0", {"fp32": {"model.onnx": (b"x" * 5000, [])}})
    found = fetch_release(ReleaseRef(store.as_uri(), (), "m", "2.0"))
    assert getattr(found, "version", found) == "2.0"
    stranger = keys.generate_private_key()
    publish_files(store, stranger, "m", "3.0", {"fp32": {"model.onnx": (b"y" * 5000, [])}})
    refused = fetch_release(ReleaseRef(store.as_uri(), (), "m", "3.0"))
    assert getattr(refused, "reason", "") == "UntrustedKey"
    assert "trusted: release-2026 (" in str(refused)


def test_an_existing_secret_and_trusted_keys_share_one_projected_volume(helm_bin: Path) -> None:
    documents = template(helm_bin, *_values("--set", "store.existingSecret=signing"))
    volume = {v["name"]: v for v in _pod(documents)["volumes"]}["store-key"]
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "signing",
                    "items": [{"key": "public-key.pem", "path": "public-key.pem"}]}},
        {"configMap": {"name": "t-edge-rollout-store-key"}},
    ]  # fmt: skip
    data = one(documents, "ConfigMap", "store-key")["data"]
    assert "public-key.pem" not in data


@pytest.mark.parametrize(
    ("keys_", "fragment"),
    [
        pytest.param([TRUSTED[0], {**TRUSTED[1], "id": "release-2026"}],
                     'the id "release-2026" is used twice', id="duplicate-id"),
        pytest.param([{"id": f"k{i}", "publicKey": "x"} for i in range(5)],
                     "maxItems: got 5, want 4", id="too-many"),
        pytest.param([{"id": "Old Key", "publicKey": "x"}], "does not match pattern",
                     id="bad-id"),
    ],
)  # fmt: skip
def test_a_bad_trust_set_is_refused_by_helm(
    helm_bin: Path, keys_: list[dict[str, str]], fragment: str
) -> None:
    done = subprocess.run(
        [str(helm_bin), "template", "t", str(CHART), "--set-json",
         f"store.trustedKeys={json.dumps(keys_)}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert fragment in done.stderr, done.stderr
