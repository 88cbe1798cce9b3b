"""The pure parts of `make images`: apt sources parsing, and layers that depend only on content.

The full build (debootstrap, pip, chroot) is tests/integration/test_images.py; these run in
milliseconds on small trees.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from edge_rollout.testing import ocilayout, rootfs

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.test/debian
Suites: bookworm
"""


def test_deb822_sources_give_uri_suites_and_keyring_and_skip_disabled_stanzas() -> None:
    sources = list(rootfs.parse_deb822(DEB822))
    assert [s.uri for s in sources] == [
        "http://mirror.test/debian",
        "http://mirror.test/debian-security",
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[0].keyring == "/usr/share/keyrings/debian-archive-keyring.gpg"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "deb http://m.test/debian bookworm main",
            rootfs.AptSource("http://m.test/debian", ("bookworm",), None),
            id="plain",
        ),
        pytest.param(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.test/debian bookworm main # note",
            rootfs.AptSource("http://m.test/debian", ("bookworm",), "/k.gpg"),
            id="options",
        ),
        pytest.param(
            "deb [ signed-by=/k.gpg ] http://m.test/debian bookworm main",
            rootfs.AptSource("http://m.test/debian", ("bookworm",), "/k.gpg"),
            id="spaced-brackets",
        ),
    ],
)
def test_one_line_sources(line: str, expected: rootfs.AptSource) -> None:
    assert list(rootfs.parse_one_line(f"# comment\ndeb-src http://x bookworm main\n{line}\n")) == [
        expected
    ]


def test_the_mirror_is_the_source_of_the_suite_itself_not_updates_or_security(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(rootfs.MIRROR_VARIABLE, raising=False)
    sources = [
        rootfs.AptSource("http://security.test", ("bookworm-security",), None),
        rootfs.AptSource("http://mirror.test", ("bookworm", "bookworm-updates"), None),
    ]
    assert rootfs.mirror_for("bookworm", sources).uri == "http://mirror.test"
    with pytest.raises(RuntimeError, match=r"no apt source for suite 'trixie'.*EDGE_ROLLOUT_"):
        rootfs.mirror_for("trixie", sources)


def make_tree(root: Path, mtime: float) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "b.py").write_text("b = 1\n")
    (root / "pkg" / "a.py").write_text("a = 1\n")
    (root / "pkg" / "sub" / "tool").write_text("#!/usr/bin/python3\n")
    (root / "pkg" / "sub" / "tool").chmod(0o700)
    os.link(root / "pkg" / "a.py", root / "pkg" / "same.py")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime))
    return root


def members(layer: ocilayout.Layer) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.path.read_bytes()))) as tar:
        return tar.getmembers()


def test_a_layer_depends_only_on_names_and_contents(tmp_path: Path) -> None:
    trees = [make_tree(tmp_path / name, mtime) for name, mtime in (("one", 1e9), ("two", 2e9))]
    layers = [
        ocilayout.write_layer(tmp_path / f"blobs-{i}", [ocilayout.Tree(tree, "usr/lib/x")])
        for i, tree in enumerate(trees)
    ]
    assert layers[0].blob.digest == layers[1].blob.digest
    assert layers[0].diff_id == layers[1].diff_id
    entries = members(layers[0])
    names = [m.name for m in entries]
    assert names == sorted(names)
    assert names[:4] == ["usr", "usr/lib", "usr/lib/x", "usr/lib/x/pkg"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in entries} == {(0, 0, 0, "", "")}
    assert all(not m.pax_headers for m in entries), "no atime/ctime or other PAX extras"
    by_name = {m.name: m for m in entries}
    assert by_name["usr/lib/x/pkg/sub/tool"].mode == 0o755
    assert by_name["usr/lib/x/pkg/b.py"].mode == 0o644
    assert by_name["usr/lib/x/pkg/same.py"].islnk()
    assert by_name["usr/lib/x/pkg/same.py"].linkname == "usr/lib/x/pkg/a.py"


def test_a_data_directory_is_owned_by_the_image_user(tmp_path: Path) -> None:
    directory = ocilayout.Directory("/var/lib/edge-rollout", 0o750, (65532, 65532))
    layer = ocilayout.write_layer(tmp_path, [], [directory])
    entries = {m.name: m for m in members(layer)}
    assert sorted(entries) == ["var", "var/lib", "var/lib/edge-rollout"]
    data = entries["var/lib/edge-rollout"]
    assert (data.uid, data.gid, data.mode, data.isdir()) == (65532, 65532, 0o750, True)


def test_the_index_names_the_image_for_containerd_and_oci_tools() -> None:
    manifest = ocilayout.Blob("sha256:" + "ab" * 32, 123, ocilayout.MANIFEST_MEDIA_TYPE)
    index = ocilayout.index_document(manifest, "ghcr.io/edge-rollout/agent:0.1.0", "amd64")
    (entry,) = index["manifests"]
    assert entry["annotations"] == {
        "io.containerd.image.name": "ghcr.io/edge-rollout/agent:0.1.0",
        "org.opencontainers.image.ref.name": "0.1.0",
    }
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["digest"] == manifest.digest
