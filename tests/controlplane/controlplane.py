"""A real etcd + kube-apiserver on loopback, in the style of controller-runtime's envtest.

There is no controller-manager, scheduler or kubelet: objects are stored and
validated, RBAC and admission run, but nothing reconciles built-in resources
(Deployments get no Pods, deleted Namespaces stay Terminating). That is exactly
enough for an operator's API-level tests and starts in seconds.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

from tests.controlplane import pki
from tests.controlplane.build import Binaries, kubernetes_version
from tests.controlplane.cluster import CRD_DIR, Cluster
from tests.controlplane.processes import ManagedProcess, StartupError

LOOPBACK = "127.0.0.1"
WORKDIR_PREFIX = "tcpmonitor-controlplane-"
_OWNER_FILE = "owner.pid"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
_PORT_RETRIES = 3


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free loopback ports.

    All sockets stay open until every port is chosen so the same port is never
    handed out twice; another process can still grab one before our child binds
    it, which ControlPlane.start() handles by retrying.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _sweep_stale_workdirs() -> None:
    """Delete work directories whose owning process is gone.

    The kernel kills our children when we are SIGKILLed, but nothing runs to remove
    the directory; this reclaims it on the next start.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((candidate / _OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge: unreadable, or the owner is alive


def _child_env() -> dict[str, str]:
    """Our environment minus variables the components would read as configuration.

    etcd treats any ETCD_* variable as a flag, and a developer's shell may well
    have some set for a different etcd.
    """
    return {key: value for key, value in os.environ.items() if not key.startswith("ETCD_")}


@dataclass(frozen=True)
class _Credentials:
    ca: pki.KeyPair
    serving: pki.KeyPair
    admin: pki.KeyPair
    sa_private: Path
    sa_public: Path


class ControlPlane:
    """Start and stop one etcd + kube-apiserver pair in a private temp directory.

    Use as a context manager, or call start() and stop(); stop() is also
    registered with atexit so an aborted session still cleans up.
    """

    def __init__(
        self,
        binaries: Binaries,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.binaries = binaries
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.workdir: Path | None = None
        self.etcd_url: str | None = None
        self.server: str | None = None
        self._processes: list[ManagedProcess] = []
        self._cluster: Cluster | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # -- public API ---------------------------------------------------------------

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise RuntimeError("control plane is not running; call start() first")
        return self._cluster

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def kubectl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl as cluster admin."""
        return self.cluster.kubectl(*args, check=check)

    def install_crds(self, directory: Path = CRD_DIR) -> list[str]:
        """Apply the CRDs in ``directory`` and wait until they are Established."""
        return self.cluster.install_crds(directory, timeout=self.start_timeout)

    def start(self) -> Cluster:
        if self._cluster is not None:
            return self._cluster
        _sweep_stale_workdirs()
        atexit.register(self.stop)
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        try:
            (self.workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            credentials = self._write_credentials(self.workdir)
            for attempt in range(1, _PORT_RETRIES + 1):
                try:
                    self._start_processes(self.workdir, credentials)
                    break
                except StartupError as error:
                    self._stop_processes()
                    if "address already in use" not in str(error) or attempt == _PORT_RETRIES:
                        raise
        except BaseException:
            self.stop()
            raise
        self._cluster = Cluster(
            kubeconfig=self.workdir / "admin.kubeconfig",
            kubectl_binary=self.binaries.kubectl,
            pinned_version=kubernetes_version(),
        )
        return self._cluster

    def stop(self) -> None:
        """Stop the API server, then etcd, then delete the temp directory. Idempotent."""
        atexit.unregister(self.stop)
        self._stop_processes()
        self._cluster = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------

    def _write_credentials(self, workdir: Path) -> _Credentials:
        pki_dir = workdir / "pki"
        pki_dir.mkdir()
        ca = pki.create_ca(pki_dir)
        serving = pki.issue(
            ca,
            pki_dir,
            "apiserver",
            common_name="kube-apiserver",
            server_ips=(LOOPBACK,),
            server_dns=("localhost",),
        )
        admin = pki.issue(
            ca,
            pki_dir,
            "admin",
            common_name="tcpmonitor-test-admin",
            organizations=("system:masters",),
        )
        sa_private, sa_public = pki.create_service_account_keys(pki_dir)
        context = ssl.create_default_context(cafile=str(ca.cert_path))
        context.load_cert_chain(str(admin.cert_path), str(admin.key_path))
        self._ssl_context = context
        return _Credentials(ca, serving, admin, sa_private, sa_public)

    def _start_processes(self, workdir: Path, credentials: _Credentials) -> None:
        etcd_client, etcd_peer, secure_port = _free_ports(3)
        self.etcd_url = f"http://{LOOPBACK}:{etcd_client}"
        self.server = f"https://{LOOPBACK}:{secure_port}"
        data_dir = workdir / "etcd-data"
        shutil.rmtree(data_dir, ignore_errors=True)  # left over from a failed attempt
        peer_url = f"http://{LOOPBACK}:{etcd_peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Test data is disposable; skipping fsync makes writes much faster.
                "--unsafe-no-fsync=true",
            ],
            workdir / "etcd.log",
        )
        etcd.wait_until(self._etcd_healthy, self.start_timeout, "/health")

        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={secure_port}",
                f"--tls-cert-file={credentials.serving.cert_path}",
                f"--tls-private-key-file={credentials.serving.key_path}",
                f"--client-ca-file={credentials.ca.cert_path}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={credentials.sa_public}",
                f"--service-account-signing-key-file={credentials.sa_private}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # As in envtest: nothing creates the `default` ServiceAccount without a
                # controller-manager, and this plugin would then reject every Pod.
                "--disable-admission-plugins=ServiceAccount",
                # The `kubernetes` Service endpoint reconciler rejects loopback
                # addresses and would log an error every ten seconds.
                "--endpoint-reconciler-type=none",
            ],
            workdir / "kube-apiserver.log",
        )
        apiserver.wait_until(self._apiserver_ready, self.start_timeout, "/readyz ok")
        # /readyz does not cover the bootstrap controller that creates the `default`
        # namespace; tests using it straight away would race it.
        apiserver.wait_until(
            lambda: self._get(f"{self.server}/api/v1/namespaces/default") is not None,
            self.start_timeout,
            "the default namespace",
        )
        self._write_kubeconfig(workdir / "admin.kubeconfig", credentials)

    def _spawn(self, name: str, argv: list[str], log_path: Path) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path, env=_child_env())
        self._processes.append(process)
        process.start()
        return process

    def _stop_processes(self) -> None:
        # Reverse start order: the API server shuts down quickly only while etcd is up.
        while self._processes:
            self._processes.pop().stop(self.stop_timeout)

    def _get(self, url: str) -> bytes | None:
        """GET with the admin identity; None for any failure, since we're polling."""
        try:
            with urllib.request.urlopen(url, timeout=5, context=self._ssl_context) as response:
                body: bytes = response.read()
                return body
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return None

    def _etcd_healthy(self) -> bool:
        body = self._get(f"{self.etcd_url}/health")
        try:
            return body is not None and json.loads(body).get("health") == "true"
        except ValueError:
            return False

    def _apiserver_ready(self) -> bool:
        return self._get(f"{self.server}/readyz") == b"ok"

    def _write_kubeconfig(self, path: Path, credentials: _Credentials) -> None:
        """Embed the certificates so the kubeconfig can be copied and used anywhere."""

        def b64(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "tcpmonitor-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(credentials.ca.cert_path),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(credentials.admin.cert_path),
                        "client-key-data": b64(credentials.admin.key_path),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "tcpmonitor-test",
                    "context": {"cluster": "tcpmonitor-test", "user": "admin"},
                }
            ],
            "current-context": "tcpmonitor-test",
        }
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(document))
