"""The command line meets a hostile environment: one line saying what happened and what to do.

Real conditions only: a reader that closed its pipe, a store on a tmpfs too small for the release,
a store on a read-only mount (both in a mount namespace the test makes with `unshare`, gone when
the command ends), and Ctrl-C while the publisher measures. Nothing is half-published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import store_fixtures

small_model = store_fixtures.small_model
CLI = [sys.executable, "-m", "edge_rollout.cli.main"]


def publish_argv(model: Path, store: Path, key: Path) -> list[str]:
    return [*CLI, "publish", str(model), "--name", "mlp", "--version", "1.0.0", "--store",
            str(store), "--key", str(key), "--runs", "2", "--variants", "fp32"]  # fmt: skip


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "release.key"
    subprocess.run([*CLI, "keygen", str(path)], capture_output=True, check=True, timeout=60)
    return path


def in_mount_namespace(setup: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`argv` in a private mount namespace after the shell commands `setup` ran in it."""
    script = f'set -e; {setup}; exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", *argv], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "400"})  # fmt: skip


def assert_one_line(stderr: str, *expected: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    last = lines[-1]
    for text in expected:
        assert text in last, stderr
    return last


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader went away, as `| head` does once it has what it wants
    try:
        argv = [*CLI, "keygen", str(tmp_path / "k")]
        done = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
    assert (tmp_path / "k").exists()


def test_a_full_store_disk_says_so_and_publishes_nothing(
    tmp_path: Path, small_model: Path, key: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    done = in_mount_namespace(f"mount -t tmpfs -o size=8k tmpfs {store}",
                              publish_argv(small_model, store, key))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "edge-rollout publish: No space left on device", "free some space",
                    "nothing was published half-way")  # fmt: skip
    assert not list(store.glob("models/*/*/index.json"))  # the tmpfs is gone with the namespace


def test_a_read_only_store_says_so(tmp_path: Path, small_model: Path, key: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    setup = f"mount --bind {store} {store}; mount -o remount,bind,ro {store}"
    done = in_mount_namespace(setup, publish_argv(small_model, store, key))
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "cannot write (Read-only file system)",
                    "Pass --store a directory you can write to")  # fmt: skip
    assert not any(store.iterdir())


def measuring_child(parent: int) -> bool:
    """The publisher is measuring: a child process of `parent` runs the measuring module."""
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == str(parent) and b"measuring" in cmdline:
            return True
    return False


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_measuring_ends_with_one_line(
    tmp_path: Path, small_model: Path, key: Path
) -> None:
    store = tmp_path / "store"
    # As from a terminal: SIGINT at its default (a shell starts background jobs with it ignored,
    # and Python then never raises KeyboardInterrupt).
    argv = publish_argv(small_model, store, key)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not measuring_child(proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the publisher never started measuring"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert_one_line(stderr, "edge-rollout publish: interrupted", "nothing was published half-way")
    assert not list(store.glob("models/*/*/index.json"))
