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
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

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
ETCD = "etcd"
APISERVER = "kube-apiserver"
#: A key outside the API server's /registry prefix, so it never shows up in the API.
_REVISION_MARKER_KEY = b"/tcpmonitor-test/revision-marker"


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
        # By name (ETCD, APISERVER), in start order; fault tests stop and start them.
        self._processes: dict[str, ManagedProcess] = {}
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

    # -- faults: crash, restart and compact the real components ---------------------
    #
    # Start and restart from a thread that lives as long as the process should (the
    # test's own): the kernel's parent-death signal is tied to the forking thread,
    # so a component started from a short-lived helper thread dies with it.

    @property
    def apiserver_running(self) -> bool:
        return self._process(APISERVER).running

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver and reap it: an outage as abrupt as a node loss.

        Open connections (watches included) are reset and new ones are refused
        until start_apiserver(); etcd and its data stay as they are.
        """
        self._process(APISERVER).kill()

    def start_apiserver(self) -> float:
        """Start kube-apiserver again with the same flags, port and log (appended).

        Returns the seconds from the start until /readyz is ok and a read through
        etcd works. A test can kill, sleep for the outage, then call this.
        """
        process = self._process(APISERVER)
        started = time.monotonic()
        process.start()
        self._wait_apiserver_ready(process)
        return time.monotonic() - started

    def restart_apiserver(self) -> float:
        """kill_apiserver() then start_apiserver(); returns the seconds until ready."""
        self.kill_apiserver()
        return self.start_apiserver()

    def restart_etcd(self, *, kill: bool = False) -> float:
        """Stop etcd (SIGTERM, or SIGKILL with ``kill``) and start it on the same data.

        The API server stays up and has to reconnect by itself; this returns the
        seconds from stopping etcd until etcd is healthy and the API server serves a
        read from etcd again (/readyz alone may still be ok from before the restart).
        Measured: about 10 s with SIGTERM (etcd drains the API server's gRPC
        streams for about 7 s before it exits), about 1 s with SIGKILL.
        """
        etcd = self._process(ETCD)
        started = time.monotonic()
        if kill:
            etcd.kill()
        else:
            etcd.stop(self.stop_timeout)
        etcd.start()
        etcd.wait_until(self._etcd_healthy, self.start_timeout, "/health after a restart")
        self._wait_apiserver_ready(self._process(APISERVER))
        return time.monotonic() - started

    def kill_etcd(self) -> None:
        """SIGKILL etcd: the API server stays up but can read and write nothing until
        start_etcd(); a fault test changes its targets in between."""
        self._process(ETCD).kill()

    def start_etcd(self) -> float:
        """Start etcd again on the same data; returns the seconds until the API server serves
        a read from it again."""
        etcd = self._process(ETCD)
        started = time.monotonic()
        etcd.start()
        etcd.wait_until(self._etcd_healthy, self.start_timeout, "/health after a restart")
        self._wait_apiserver_ready(self._process(APISERVER))
        return time.monotonic() - started

    def etcd_revision(self) -> int:
        """etcd's current revision, which is what the API calls resourceVersion."""
        header = self._etcd_call("/v3/kv/range", {"key": _b64(_REVISION_MARKER_KEY)})["header"]
        return int(header["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd (physically) at its current revision; returns that revision.

        A marker key outside /registry is written first, so the compacted revision
        is newer than every resourceVersion a client has seen, and calling this
        twice never asks for an already compacted revision (which etcd rejects).

        What clients see: nothing, as long as the API server's watch cache still
        holds the history. A watch from an old resourceVersion is served from that
        cache and replays the events since, without an error; on v1.36 even a list
        with ``resourceVersion=OLD&resourceVersionMatch=Exact`` is answered from the
        cache's snapshots (both checked in tests/e2e/faults/test_controls.py).
        Only requests the API server passes through to etcd get 410 Gone. Use
        expire_watches() to make watchers re-list.
        """
        self._etcd_call("/v3/kv/put", {"key": _b64(_REVISION_MARKER_KEY), "value": _b64(b"x")})
        revision = self.etcd_revision()
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def expire_watches(self) -> float:
        """Make every watcher get 410 Gone and re-list: compact etcd, restart the API server.

        The restart (SIGKILL, then the same flags) drops every open watch and
        empties the watch cache; the new cache starts at the compacted revision or
        later, so a client resuming from any resourceVersion it had gets an ERROR
        event with code 410 ("too old resource version"), and a watch the API server
        passes through to etcd gets 410 from the compaction. Returns the seconds the
        API server took to be ready again.
        """
        self.compact_etcd()
        return self.restart_apiserver()

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
        self._wait_apiserver_ready(apiserver)
        self._write_kubeconfig(workdir / "admin.kubeconfig", credentials)

    def _spawn(self, name: str, argv: list[str], log_path: Path) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path, env=_child_env())
        self._processes[name] = process
        process.start()
        return process

    def _process(self, name: str) -> ManagedProcess:
        if self._cluster is None or name not in self._processes:
            raise RuntimeError("control plane is not running; call start() first")
        return self._processes[name]

    def _stop_processes(self) -> None:
        # Reverse start order: the API server shuts down quickly only while etcd is up.
        for name in reversed(list(self._processes)):
            self._processes.pop(name).stop(self.stop_timeout)

    def _wait_apiserver_ready(self, apiserver: ManagedProcess) -> None:
        apiserver.wait_until(self._apiserver_ready, self.start_timeout, "/readyz ok")
        # A GET of one object is read from etcd, not the watch cache: it proves the
        # API server really talks to etcd (after an etcd restart) and, at first
        # start, that the bootstrap controller created `default`, which /readyz
        # does not cover and tests using it straight away would race.
        apiserver.wait_until(
            lambda: self._get(f"{self.server}/api/v1/namespaces/default") is not None,
            self.start_timeout,
            "the default namespace",
        )

    def _etcd_call(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        """POST to etcd's v3 JSON gateway (gRPC-gateway: int64s are strings)."""
        request = urllib.request.Request(
            f"{self.etcd_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"etcd {path}: {error.code} {error.read().decode()}") from error
        return reply

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
