"""A real local control plane: etcd + kube-apiserver on loopback, as envtest runs them.

Used by the pytest fixtures, `make cluster-up` / `make cluster-down` and the demo. Ports are picked
at run time, certificates are generated, and `stop()` leaves no process behind. The binaries come
from `hack/build-binaries.sh` (built from the Go module proxy and cached by version).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries.sh"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


def binaries_dir() -> Path:
    """The cached binaries; builds them on first use (slow once, seconds afterwards)."""
    override = os.environ.get("EDGE_ROLLOUT_BIN_DIR")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """etcd + kube-apiserver under `workdir`; use as a context manager or start()/stop()."""

    workdir: Path
    bin_dir: Path = field(default_factory=binaries_dir)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_certificates(self.workdir)
        etcd_port = free_port()
        self._spawn("etcd", etcd_args(self.bin_dir, self.workdir, etcd_port, free_port()))
        self.port = free_port()
        self._spawn(
            "kube-apiserver", apiserver_args(self.bin_dir, self.workdir, etcd_port, self.port)
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        write_kubeconfig(self.workdir, self.url)
        (self.workdir / "pids").write_text(" ".join(str(p.pid) for p in self.processes))

    def stop(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc)
        self.processes.clear()

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes.append(proc)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"control-plane process {proc.pid} exited with {proc.returncode}; "
                        f"see etcd.log and kube-apiserver.log in {self.workdir}"
                    )
            if self._ready(context):
                return
            time.sleep(0.3)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {timeout:.0f}s; see {self.workdir}/kube-apiserver.log"
        )

    def _ready(self, context: ssl.SSLContext) -> bool:
        token = {"Authorization": "Bearer edge-rollout-admin"}
        try:
            for path in ("/readyz", "/api/v1/namespaces/default", "/api/v1/namespaces/kube-system"):
                request = urllib.request.Request(self.url + path, headers=token)
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status != 200:
                        return False
        except (urllib.error.URLError, OSError):
            return False
        return True


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def stop_pids(workdir: Path) -> None:
    """Stop a control plane that `start()` left running in another process (`make cluster-down`)."""
    pid_file = workdir / "pids"
    if not pid_file.exists():
        return
    for pid in reversed([int(p) for p in pid_file.read_text().split()]):
        _kill_group(pid)
    pid_file.unlink()


def _kill_group(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def etcd_args(bin_dir: Path, workdir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    return [
        str(bin_dir / "etcd"),
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(bin_dir: Path, workdir: Path, etcd_port: int, port: int) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={workdir / 'serving'}",
        f"--client-ca-file={workdir / 'ca.crt'}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={workdir / 'sa.pub'}",
        f"--service-account-signing-key-file={workdir / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def write_certificates(workdir: Path) -> None:
    """CA, an admin client cert (group system:masters), the service-account key pair, a token.

    Also drops the apiserver's self-generated serving chain of an earlier start in `workdir`: it
    names that start's addresses (127.0.0.1 for this control plane, 10.250.0.1 in a multi-node
    cluster), so the next apiserver must make its own."""
    shutil.rmtree(workdir / "serving", ignore_errors=True)
    ca_key, ca_cert = _self_signed_ca()
    admin_key = _rsa_key()
    admin_cert = _sign(ca_key, ca_cert, admin_key, "admin", "system:masters")
    sa_key = _rsa_key()
    _write_pem(workdir / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_pem(workdir / "admin.crt", admin_cert.public_bytes(serialization.Encoding.PEM))
    _write_pem(workdir / "admin.key", _private_pem(admin_key))
    _write_pem(workdir / "sa.key", _private_pem(sa_key))
    _write_pem(
        workdir / "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    (workdir / "tokens.csv").write_text('edge-rollout-admin,admin-token,1,"system:masters"\n')


def write_kubeconfig(workdir: Path, url: str) -> None:
    """An admin kubeconfig naming its certificates by absolute path (JSON is valid YAML).

    Paths, not embedded `*-data`: the kubernetes client writes embedded data to temporary
    files it removes only at a clean exit, so every killed operator or agent left three behind."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "edge-rollout",
        "clusters": [
            {
                "name": "edge-rollout",
                "cluster": {
                    "server": url,
                    "certificate-authority": str(workdir / "serving/apiserver.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(workdir / "admin.crt"),
                    "client-key": str(workdir / "admin.key"),
                },
            }
        ],
        "contexts": [
            {"name": "edge-rollout", "context": {"cluster": "edge-rollout", "user": "admin"}}
        ],
    }
    path = workdir / "kubeconfig"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _self_signed_ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _rsa_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("edge-rollout-test-ca"))
        .issuer_name(_name("edge-rollout-test-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _sign(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    user: str,
    group: str,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(user, group))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_pem(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def main(argv: list[str] | None = None) -> None:
    """`python -m edge_rollout.testing.controlplane up|down DIR` (what `make cluster-up` runs)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    if args.action == "down":
        stop_pids(args.workdir)
        print(f"control plane in {args.workdir} stopped")
        return
    stop_pids(args.workdir)
    plane = ControlPlane(args.workdir.resolve())
    plane.start()
    print(f"kube-apiserver at {plane.url}\nexport KUBECONFIG={plane.kubeconfig}")


if __name__ == "__main__":
    main()
