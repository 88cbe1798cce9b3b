"""The agent checks a manifest's signatures against every key its EdgeNode entry trusts
(`publicKey` and `trustedKeys`), as the operator checks the index (issue 14.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.manifest import Manifest
from edge_rollout.store import keys
from edge_rollout_agent import sync
from edge_rollout_agent.__main__ import source_opener
from tests.unit.agent.storefixture import ScratchStore

OTHER = keys.generate_private_key()


def _entry(store: ScratchStore, manifest: Manifest, **fields: Any) -> DesiredModel:
    return DesiredModel.model_validate(store.desired(manifest, **fields))


def _trusted(name: str, pem: str) -> dict[str, str]:
    return {"id": name, "publicKey": pem}


def test_a_manifest_signed_by_any_trusted_key_is_taken(tmp_path: Path) -> None:
    store = ScratchStore(tmp_path / "store")
    manifest = store.publish(b"model bytes" * 100, "1.0")
    other = keys.public_key_pem(OTHER.public_key())
    both = _entry(store, manifest, publicKey="",
                  trustedKeys=[_trusted("release-2027", other),
                               _trusted("release-2026", store.public_key)])  # fmt: skip
    source = source_opener()(both)
    assert sync.fetch_manifest(source, both, None).version == "1.0"
    legacy = _entry(store, manifest, trustedKeys=[_trusted("release-2027", other)])
    assert sync.fetch_manifest(source_opener()(legacy), legacy, None).version == "1.0"


def test_a_manifest_no_trusted_key_signed_fails_the_release_naming_the_keys(
    tmp_path: Path,
) -> None:
    store = ScratchStore(tmp_path / "store")
    manifest = store.publish(b"model bytes" * 100, "1.0")
    other = keys.public_key_pem(OTHER.public_key())
    entry = _entry(store, manifest, publicKey="", trustedKeys=[_trusted("release-2027", other)])
    with pytest.raises(sync.SyncError) as err:
        sync.fetch_manifest(source_opener()(entry), entry, None)
    assert err.value.reason == "ManifestInvalid"
    message = str(err.value)
    assert f"signed by key id(s) {keys.key_id(store.key.public_key())}" in message
    assert f"trusted: release-2027 ({keys.key_id(OTHER.public_key())})" in message
    assert "trustedKeys" in message
