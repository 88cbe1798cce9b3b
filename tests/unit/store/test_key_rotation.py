"""Releases signed by several keys: `.sig` files with key ids, countersigning, verifiers that
accept any trusted signature and name the keys they found when none is trusted (issue 14.7)."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli.main import build_parser
from edge_rollout.store import codec, keys
from edge_rollout.store.errors import StoreError, VerificationError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.releases import (
    ReleaseCache,
    ReleaseRef,
    ReleaseUnavailableError,
    fetch_release,
    releases_for,
)
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore
from tests.fixtures.stores import publish_files

DATA = random.Random(7).randbytes(30_000)
KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in range(1, 7)]
"""Fixed keys, so Hypothesis examples replay."""


def _trusted(*indexes: int) -> tuple[keys.Trusted, ...]:
    return tuple(keys.Trusted(f"k{i}", KEYS[i].public_key()) for i in indexes)


def _sig_file(signers: list[int], data: bytes) -> bytes:
    out = b""
    for i in signers:
        out = keys.countersign(KEYS[i], data, out) or out
    return out


# --- the .sig format --------------------------------------------------------------------------


def test_a_signature_line_names_the_key_id_of_its_key() -> None:
    line = keys.sign(KEYS[0], b"index")
    key_id, value = line.decode().split()
    assert key_id == keys.key_id(KEYS[0].public_key())
    assert len(key_id) == 16
    assert len(base64.b64decode(value)) == 64
    assert line.endswith(b"\n")


def test_a_bare_signature_from_before_key_ids_still_verifies() -> None:
    bare = base64.b64encode(KEYS[0].sign(b"index")) + b"\n"
    assert keys.verify(KEYS[0].public_key(), b"index", bare)
    assert keys.signed_by(_trusted(1, 0), b"index", bare) == _trusted(0)[0]
    assert keys.named_ids(bare) == ["unnamed"]


def test_countersigning_keeps_the_first_signature_and_is_idempotent() -> None:
    first = keys.sign(KEYS[0], b"index")
    both = keys.countersign(KEYS[1], b"index", first)
    assert both is not None
    assert both.startswith(first)
    assert keys.countersign(KEYS[1], b"index", both) is None
    assert keys.countersign(KEYS[0], b"index", both) is None
    assert keys.named_ids(both) == [keys.key_id(k.public_key()) for k in KEYS[:2]]


def test_a_line_that_names_another_key_does_not_count_for_this_one() -> None:
    value = keys.sign(KEYS[0], b"index").split()[1]
    lying = keys.key_id(KEYS[1].public_key()).encode() + b" " + value + b"\n"
    assert not keys.verify(KEYS[0].public_key(), b"index", lying)


@settings(max_examples=60, deadline=None)
@given(
    signers=st.lists(st.integers(0, 5), max_size=4, unique=True),
    trusted=st.lists(st.integers(0, 5), max_size=4, unique=True),
    data=st.binary(max_size=64),
)
def test_a_file_verifies_exactly_when_a_trusted_key_signed_it(
    signers: list[int], trusted: list[int], data: bytes
) -> None:
    """Any one trusted signature suffices, whatever the order and the other signatures."""
    sig = _sig_file(signers, data)
    found = keys.signed_by(_trusted(*trusted), data, sig)
    common = [i for i in trusted if i in signers]
    assert (found is not None) == bool(common)
    if found is not None:
        assert found.name == f"k{common[0]}"  # the first in trust order
    assert keys.signed_by(_trusted(*trusted), data + b"x", sig) is None  # altered data


@settings(max_examples=40, deadline=None)
@given(
    signers=st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True),
    noise=st.lists(st.text(min_size=1, max_size=30).filter(lambda t: "\n" not in t), max_size=3),
)
def test_malformed_lines_never_verify_and_never_hide_a_good_one(
    signers: list[int], noise: list[str]
) -> None:
    good = _sig_file(signers, b"data")
    junk = "".join(f"{line}\n" for line in noise).encode()
    assert keys.signed_by(_trusted(*signers), b"data", junk + good) is not None
    assert keys.signed_by(_trusted(*signers), b"data", junk) is None


def test_the_message_names_the_keys_found_and_the_trusted_ones() -> None:
    sig = _sig_file([2, 3], b"data")
    text = keys.describe_untrusted(_trusted(0, 1), sig)
    for i in (2, 3):
        assert keys.key_id(KEYS[i].public_key()) in text
    assert f"k0 ({keys.key_id(KEYS[0].public_key())})" in text
    assert "trusted: k0" in text


# --- the store ----------------------------------------------------------------------------------


def _publish(root: Path, key: Ed25519PrivateKey, version: str, data: bytes = DATA) -> None:
    publish_files(root, key, "m", version, {"fp32": {"model.onnx": (data, [])}})


def _manifest_sig(root: Path, version: str) -> Path:
    reader = StoreReader(FileTransport(root), [keys.Trusted(str(i), k.public_key())
                                               for i, k in enumerate(KEYS)])  # fmt: skip
    digest = reader.fetch_release("m", version).variants[0].manifest_digest
    return root / codec.signature_path(digest.removeprefix("sha256:"))


def test_signing_a_manifest_with_a_new_key_keeps_the_old_signature(tmp_path: Path) -> None:
    """`sign_manifest` by B on a manifest A signed adds B's line (it used to replace A's, and
    readers trusting only A then refused the release)."""
    _publish(tmp_path, KEYS[0], "1.0")
    path = _manifest_sig(tmp_path, "1.0")
    digest = path.name.removesuffix(".sig")
    assert DirectoryStore(tmp_path).sign_manifest(digest, KEYS[1]) is True
    assert DirectoryStore(tmp_path).sign_manifest(digest, KEYS[1]) is False
    assert keys.named_ids(path.read_bytes()) == [keys.key_id(k.public_key()) for k in KEYS[:2]]
    for key in KEYS[:2]:
        reader = StoreReader(FileTransport(tmp_path), key.public_key())
        assert reader.fetch_manifest(digest).version == "1.0"


def test_a_reader_trusting_old_and_new_reads_releases_of_either(tmp_path: Path) -> None:
    _publish(tmp_path, KEYS[0], "1.0")
    _publish(tmp_path, KEYS[1], "2.0", DATA[::-1])
    reader = StoreReader(FileTransport(tmp_path), _trusted(0, 1))
    for version in ("1.0", "2.0"):
        release = reader.fetch_release("m", version)
        reader.fetch_variant(release, "fp32")
    assert reader.signers["m@1.0"].name == "k0"
    assert reader.signers["m@2.0"].name == "k1"


def test_a_release_by_an_untrusted_key_is_refused_naming_both_sides_and_the_fix(
    tmp_path: Path,
) -> None:
    _publish(tmp_path, KEYS[2], "1.0")
    reader = StoreReader(FileTransport(tmp_path), _trusted(0, 1))
    with pytest.raises(VerificationError) as err:
        reader.fetch_release("m", "1.0")
    assert err.value.check == "trust"
    message = str(err.value)
    assert keys.key_id(KEYS[2].public_key()) in message
    assert _trusted(0)[0].label() in message
    assert _trusted(1)[0].label() in message
    assert "trustedKeys" in message
    assert "store sign" in message
    assert "m@1.0" in message


def test_an_altered_index_signed_by_a_trusted_key_is_a_signature_failure(tmp_path: Path) -> None:
    _publish(tmp_path, KEYS[0], "1.0")
    index = tmp_path / "models/m/1.0/index.json"
    index.write_bytes(index.read_bytes().replace(b'"1.0"', b'"1.0" '))
    with pytest.raises(VerificationError) as err:
        StoreReader(FileTransport(tmp_path), _trusted(0)).fetch_release("m", "1.0")
    assert err.value.check == "signature"
    assert "does not verify" in str(err.value)


def test_a_sig_file_of_garbage_is_a_signature_failure_not_an_untrusted_key(tmp_path: Path) -> None:
    _publish(tmp_path, KEYS[0], "1.0")
    (tmp_path / "models/m/1.0/index.json.sig").write_bytes(b"not a signature at all\n")
    with pytest.raises(VerificationError) as err:
        StoreReader(FileTransport(tmp_path), _trusted(0)).fetch_release("m", "1.0")
    assert err.value.check == "signature"
    assert "holds no signature" in str(err.value)
    assert keys.named_ids(b"not a signature at all\n") == []


def test_the_operator_reports_untrusted_key_with_the_deployment_ids(tmp_path: Path) -> None:
    _publish(tmp_path, KEYS[2], "1.0")
    pem = keys.public_key_pem(KEYS[0].public_key())
    found = fetch_release(ReleaseRef(tmp_path.as_uri(), (("release-2026", pem),), "m", "1.0"))
    assert not isinstance(found, type(None))
    assert getattr(found, "reason", "") == "UntrustedKey"
    assert "release-2026 (" in str(found)
    signer = keys.public_key_pem(KEYS[2].public_key())
    trusted = (("release-2026", pem), ("release-2027", signer))
    ok = fetch_release(ReleaseRef(tmp_path.as_uri(), trusted, "m", "1.0"))
    assert getattr(ok, "version", "") == "1.0"


def _deployment(root: Path, trusted: list[int], policy: str = "Rollback") -> ModelDeployment:
    listed = [{"id": f"k{i}", "publicKey": keys.public_key_pem(KEYS[i].public_key())}
              for i in trusted]  # fmt: skip
    return ModelDeployment.model_validate({
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"model": {"name": "m", "version": "2.0",
                           "store": {"url": root.as_uri(), "trustedKeys": listed}},
                 "abort": {"failureHandlingPolicy": policy}},
        "status": {"stableVersion": "1.0", "targetVersion": "2.0"},
    })  # fmt: skip


def test_a_stable_release_no_trusted_key_signed_stalls_a_rollout_that_could_not_roll_back(
    tmp_path: Path,
) -> None:
    """The old key removed before the stable release was countersigned: an abort would leave the
    nodes on 2.0 while saying RolledBack, so the rollout does not start."""
    _publish(tmp_path, KEYS[0], "1.0")
    _publish(tmp_path, KEYS[1], "2.0", DATA[::-1])
    with pytest.raises(ReleaseUnavailableError) as err:
        releases_for(_deployment(tmp_path, [1]), ReleaseCache())
    assert err.value.reason == "UntrustedKey"
    message = str(err.value)
    assert "the stable version 1.0, which an abort rolls back to" in message
    assert "failureHandlingPolicy: Pause" in message
    assert keys.key_id(KEYS[0].public_key()) in message
    assert set(releases_for(_deployment(tmp_path, [0, 1]), ReleaseCache())) == {"1.0", "2.0"}
    assert set(releases_for(_deployment(tmp_path, [1], "Pause"), ReleaseCache())) == {"2.0"}
    release = StoreReader(FileTransport(tmp_path), KEYS[0].public_key()).fetch_release("m", "1.0")
    DirectoryStore(tmp_path).sign_manifest(release.variants[0].manifest_digest, KEYS[1])
    DirectoryStore(tmp_path).countersign_index("m", "1.0", KEYS[1])  # what `store sign` does
    assert set(releases_for(_deployment(tmp_path, [1]), ReleaseCache())) == {"1.0", "2.0"}


def test_a_stable_release_merely_missing_still_lets_the_rollout_go_on(tmp_path: Path) -> None:
    _publish(tmp_path, KEYS[1], "2.0")
    assert set(releases_for(_deployment(tmp_path, [1]), ReleaseCache())) == {"2.0"}


# --- the CLI ------------------------------------------------------------------------------------


def _key_files(tmp: Path, i: int) -> tuple[Path, Path]:
    private, public = tmp / f"k{i}", tmp / f"k{i}.pub"
    private.write_bytes(keys.private_key_pem(KEYS[i]))
    public.write_text(keys.public_key_pem(KEYS[i].public_key()))
    return private, public


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


def test_store_sign_countersigns_what_a_trusted_key_signed_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, keydir = tmp_path / "store", tmp_path / "keys"
    keydir.mkdir()
    _publish(store, KEYS[0], "1.0")
    _publish(store, KEYS[2], "9.0", DATA[:1000])  # by a key nobody vouches for
    (new, _), (_, old_pub) = _key_files(keydir, 1), _key_files(keydir, 0)
    assert _run(["store", "sign", str(store), "--key", str(new), "--public-key", str(old_pub)]) == 1
    out = capsys.readouterr().out
    assert "m@1.0: signed by k0" in out
    assert "countersigned" in out
    assert "not countersigned m@9.0" in out
    assert "trust check failed" in out
    new_only = StoreReader(FileTransport(store), KEYS[1].public_key())
    release = new_only.fetch_release("m", "1.0")
    new_only.fetch_variant(release, "fp32")  # the manifest carries the new signature too
    assert StoreReader(FileTransport(store), KEYS[0].public_key()).fetch_release("m", "1.0")
    with pytest.raises(VerificationError):
        new_only.fetch_release("m", "9.0")
    sig = (store / "models/m/1.0/index.json.sig").read_bytes()
    assert keys.named_ids(sig) == [keys.key_id(k.public_key()) for k in KEYS[:2]]
    again = ["store", "sign", str(store), "--key", str(new), "--public-key", str(old_pub),
             "--release", "m@1.0"]  # fmt: skip
    assert _run(again) == 0
    assert "already signed by" in capsys.readouterr().out
    assert (store / "models/m/1.0/index.json.sig").read_bytes() == sig


def test_store_verify_trusts_every_public_key_given_and_says_who_signed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, keydir = tmp_path / "store", tmp_path / "keys"
    keydir.mkdir()
    _publish(store, KEYS[0], "1.0")
    _publish(store, KEYS[1], "2.0", DATA[::-1])
    (_, old), (_, new) = _key_files(keydir, 0), _key_files(keydir, 1)
    assert _run(["store", "verify", str(store), "--public-key", f"old={old}",
                 "--public-key", str(new)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "m@1.0: index signed by old (" in out
    assert "m@2.0: index signed by k1 (" in out
    assert _run(["store", "verify", str(store), "--public-key", str(new)]) == 1
    out = capsys.readouterr().out
    assert "no signature by a trusted key" in out
    assert "1 problem(s)" in out


def test_a_missing_key_file_is_an_argument_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["store", "verify", str(tmp_path), "--public-key", str(tmp_path / "none.pub")]
        )


def test_countersign_index_refuses_a_path_that_is_no_release(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no readable release index"):
        DirectoryStore(tmp_path).countersign_index("m", "1.0", KEYS[0])
