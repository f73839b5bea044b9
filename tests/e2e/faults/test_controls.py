"""The fault controls do to the real control plane what they promise.

Each control is checked by its effect on a client: objects survive an API server
crash and an etcd restart, expire_watches() makes a resumed watch get 410 Gone,
the proxy's cut() resets a client's connections until heal(), throttle() makes a
ServiceAccount's requests get 429, and an unbound ServiceAccount gets 403 until
granted. They run on the fault tests' own control plane: killing the session's
shared one would break every other e2e test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.controlplane import Cluster, ControlPlane
from tests.e2e.faults import ApiProxy, grant_cluster_admin, service_account_kubeconfig, throttle

#: Generous bounds for things measured at 1-3 s (10 s for etcd's SIGTERM).
READY_BOUND = 30.0
PROPAGATION_TIMEOUT = 10.0


@pytest.fixture
def faulty(fault_plane: ControlPlane) -> ControlPlane:
    """The fault tests' own control plane (tests/e2e/faults/conftest.py), not the session's."""
    return fault_plane


@pytest.fixture
def ns(faulty: ControlPlane) -> str:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    faulty.kubectl("create", "namespace", name, check=True)
    return name


def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)


def _configmap(cluster: Cluster, ns: str, name: str) -> dict[str, object]:
    result = cluster.kubectl("get", "configmap", name, "-n", ns, "-o", "json", check=True)
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _resource_version(cluster: Cluster, ns: str, name: str) -> str:
    metadata = _configmap(cluster, ns, name)["metadata"]
    assert isinstance(metadata, dict)
    return str(metadata["resourceVersion"])


# -- crashes and restarts ---------------------------------------------------------


def test_objects_created_before_an_apiserver_kill_are_there_after_the_start(
    faulty: ControlPlane, ns: str
) -> None:
    cluster = faulty.cluster
    cluster.kubectl("create", "configmap", "before", "-n", ns, "--from-literal=k=v", check=True)

    faulty.kill_apiserver()
    assert not faulty.apiserver_running
    down = cluster.kubectl("get", "namespaces", timeout=20)
    assert down.returncode != 0
    assert "refused" in down.stderr, down.stderr  # "connection refused" or "... was refused"

    seconds = faulty.start_apiserver()
    assert faulty.apiserver_running
    assert seconds < READY_BOUND
    assert _configmap(cluster, ns, "before")["data"] == {"k": "v"}
    cluster.kubectl("create", "configmap", "after", "-n", ns, check=True)
    # The same log file, appended, tells both lives of the process.
    log = (faulty.workdir or Path()) / "kube-apiserver.log"
    assert "kube-apiserver started again by the test harness" in log.read_text()


@pytest.mark.parametrize("kill", [True, False], ids=["SIGKILL", "SIGTERM"])
def test_etcd_restart_keeps_the_data_and_the_apiserver_reconnects(
    faulty: ControlPlane, ns: str, kill: bool
) -> None:
    cluster = faulty.cluster
    cluster.kubectl("create", "configmap", "kept", "-n", ns, "--from-literal=k=v", check=True)

    seconds = faulty.restart_etcd(kill=kill)

    assert seconds < READY_BOUND
    assert faulty.apiserver_running  # it was never restarted
    assert _configmap(cluster, ns, "kept")["data"] == {"k": "v"}
    cluster.kubectl("create", "configmap", "written-after", "-n", ns, check=True)


# -- compaction and expired watches -------------------------------------------------


def _raw_watch(cluster: Cluster, ns: str, resource_version: str) -> list[dict[str, Any]]:
    """The events of a three-second watch from ``resource_version``, as the wire has them."""
    result = cluster.kubectl(
        "get", "--raw",
        f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={resource_version}"
        "&timeoutSeconds=3",
        check=True, timeout=20,
    )  # fmt: skip
    decoder = json.JSONDecoder()
    events, text = [], result.stdout.strip()
    while text:
        event, end = decoder.raw_decode(text)
        events.append(event)
        text = text[end:].strip()
    return events


def _drain(events: Iterator[Any]) -> None:
    """Read a watch until it ends, whether by an error (a reset) or by its end."""
    with contextlib.suppress(Exception):
        for _ in events:
            pass


def test_compaction_alone_is_hidden_by_the_watch_cache(faulty: ControlPlane, ns: str) -> None:
    cluster = faulty.cluster
    cluster.kubectl("create", "configmap", "first", "-n", ns, check=True)
    old = _resource_version(cluster, ns, "first")
    cluster.kubectl("create", "configmap", "second", "-n", ns, check=True)

    revision = faulty.compact_etcd()

    assert revision > int(old)
    # etcd has forgotten `old`, but the watch cache replays from there without error.
    events = _raw_watch(cluster, ns, old)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "second")]
    # On v1.36 even an exact list at the compacted revision comes from the cache.
    exact = cluster.kubectl(
        "get", "--raw",
        f"/api/v1/namespaces/{ns}/configmaps?resourceVersion={old}&resourceVersionMatch=Exact",
    )  # fmt: skip
    assert exact.returncode == 0, exact.stderr


def test_expire_watches_makes_a_resumed_watch_get_410_gone(faulty: ControlPlane, ns: str) -> None:
    cluster = faulty.cluster
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        listed = core.list_namespaced_config_map(ns).metadata.resource_version
        watcher = watch.Watch()
        events = watcher.stream(
            core.list_namespaced_config_map, ns, resource_version=listed, timeout_seconds=60
        )
        cluster.kubectl("create", "configmap", "seen", "-n", ns, check=True)
        seen = next(events)
        assert (seen["type"], seen["object"].metadata.name) == ("ADDED", "seen")
        last = seen["object"].metadata.resource_version

        seconds = faulty.expire_watches()

        assert seconds < READY_BOUND
        # The open watch ends with the API server (reset or end of stream) ...
        _drain(events)
        # ... and resuming it where it left off is refused: the client must re-list.
        with pytest.raises(client.ApiException) as gone:
            next(
                watch.Watch().stream(
                    core.list_namespaced_config_map, ns, resource_version=last, timeout_seconds=5
                )
            )
        assert gone.value.status == 410
        assert "too old resource version" in str(gone.value.reason)
        # Re-listing gives a resourceVersion that watches fine again.
        fresh = core.list_namespaced_config_map(ns).metadata.resource_version
        cluster.kubectl("create", "configmap", "after-expiry", "-n", ns, check=True)
        after = next(
            watch.Watch().stream(
                core.list_namespaced_config_map, ns, resource_version=fresh, timeout_seconds=10
            )
        )
        assert after["object"].metadata.name == "after-expiry"
    # The raw API says the same, in the form a watcher sees.
    error = _raw_watch(cluster, ns, last)
    assert error[0]["type"] == "ERROR"
    assert error[0]["object"]["code"] == 410


# -- the proxy ----------------------------------------------------------------------


def test_proxy_cut_resets_connections_until_heal(faulty: ControlPlane, tmp_path: Path) -> None:
    cluster = faulty.cluster
    with ApiProxy(cluster.server()) as proxy:
        through = Cluster(
            proxy.kubeconfig(cluster.kubeconfig, tmp_path / "proxied.kubeconfig"),
            cluster.kubectl_binary,
        )
        # TLS passes through: the client verifies the API server's own certificate.
        assert through.kubectl("get", "namespace", "default", check=True).returncode == 0
        assert proxy.forwarded >= 1
        # Large bodies both ways (more than the proxy's 64 KiB reads and kernel buffers).
        payload = tmp_path / "payload"
        payload.write_text("x" * 900_000)
        through.kubectl("create", "configmap", "big", f"--from-file={payload}", check=True)
        big = through.kubectl("get", "configmap", "big", "-o", "json", check=True).stdout
        assert json.loads(big)["data"]["payload"] == payload.read_text()
        # A client that exits closes its connections, and the proxy forgets them.
        _eventually(lambda: proxy.open_connections == 0, 5, "the proxy to drop closed links")

        # A long-lived connection (a watch) dies with the cut, at once.
        with through.api_client() as api:
            core = client.CoreV1Api(api)
            events = watch.Watch().stream(core.list_namespace, timeout_seconds=60)
            assert next(events)["type"] == "ADDED"
            assert proxy.open_connections >= 1
            started = time.monotonic()
            proxy.cut()
            assert proxy.is_cut
            assert proxy.open_connections == 0
            _drain(events)
            assert time.monotonic() - started < 5

        started = time.monotonic()
        refused = through.kubectl("get", "namespaces", timeout=30)
        assert refused.returncode != 0
        assert "refused" in refused.stderr, refused.stderr
        assert time.monotonic() - started < 5  # rejected, not a timeout
        # Only the proxied client is cut off.
        assert cluster.kubectl("get", "namespace", "default").returncode == 0

        proxy.heal()
        assert through.kubectl("get", "namespace", "default").returncode == 0

        # With the API server down, a connection through the proxy is accepted, then
        # reset (see ApiProxy's doc: client-go retries those, unlike a refused one).
        faulty.kill_apiserver()
        try:
            with pytest.raises(ConnectionResetError):
                _connect_and_read(proxy.port)
        finally:
            faulty.start_apiserver()
        assert through.kubectl("get", "namespace", "default").returncode == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()


def _connect_and_read(port: int) -> bytes:
    """Connect and wait for a byte; a reset may come at the connect or at the read."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        return sock.recv(1)


def test_proxy_bounds_its_connections(faulty: ControlPlane) -> None:
    with ApiProxy(faulty.cluster.server(), max_connections=1) as proxy:
        first = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        _eventually(lambda: proxy.open_connections == 1, 5, "the first connection to be open")
        with pytest.raises(ConnectionResetError):
            _connect_and_read(proxy.port)
        first.close()
        _eventually(lambda: proxy.open_connections == 0, 5, "the closed connection to go")
        assert proxy.rejected == 1


# -- identities and throttling ------------------------------------------------------


def test_unbound_service_account_is_forbidden_until_granted(
    faulty: ControlPlane, ns: str, tmp_path: Path
) -> None:
    cluster = faulty.cluster
    account = service_account_kubeconfig(
        cluster, ns, "operator", tmp_path / "sa.kubeconfig", cluster_admin=False
    )
    denied = account.kubectl("get", "namespaces")
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr

    grant_cluster_admin(cluster, ns, "operator")
    _eventually(
        lambda: account.kubectl("get", "namespaces").returncode == 0,
        PROPAGATION_TIMEOUT,
        "the ClusterRoleBinding to reach the authoriser",
    )


def _status(server: str, token: str, path: str, context: ssl.SSLContext) -> int:
    """One request with a bearer token, on a connection of its own, as a client sends it."""
    host, port = server.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_throttle_gives_the_service_account_429_until_it_ends(
    faulty: ControlPlane, ns: str, tmp_path: Path
) -> None:
    cluster = faulty.cluster
    account = service_account_kubeconfig(
        cluster, ns, "throttled", tmp_path / "sa.kubeconfig", cluster_admin=True
    )
    _eventually(
        lambda: account.kubectl("get", "namespaces").returncode == 0,
        PROPAGATION_TIMEOUT,
        "the ClusterRoleBinding to reach the authoriser",
    )
    token = cluster.create_token(ns, "throttled")
    # Trusting the CA only: the admin's client certificate would win over the token.
    assert faulty.workdir is not None
    ca_only = ssl.create_default_context(cafile=str(faulty.workdir / "pki" / "ca.crt"))

    def statuses(rounds: int) -> set[int]:
        """Requests of the subject, resource and non-resource, back to back."""
        paths = (
            "/api/v1/namespaces",
            "/version",
            f"/api/v1/namespaces/{ns}/configmaps",
            f"/api/v1/namespaces/{ns}/configmaps?watch=1&timeoutSeconds=1",
        )
        return {
            _status(cluster.server(), token, path, ca_only) for _ in range(rounds) for path in paths
        }

    started = time.monotonic()
    with throttle(cluster, (ns, "throttled")) as throttled:
        applied = time.monotonic() - started
        assert throttled.subject.username == f"system:serviceaccount:{ns}:throttled"
        assert statuses(50) == {429}
        # kubectl: client-go retries a 429 (ten times, Retry-After 1 s, per request),
        # so it is the request log that shows the rejections within the deadline.
        rejected = account.kubectl("get", "namespaces", "--request-timeout=2s", "-v=6")
        assert rejected.returncode != 0
        assert 'status="429 Too Many Requests"' in rejected.stderr, rejected.stderr
        # The Python client; with its default urllib3 retries (a 429 with Retry-After
        # is retried three times) this takes 3-6 s, so they are off here.
        no_retries = client.Configuration()
        config.load_kube_config(str(account.kubeconfig), client_configuration=no_retries)
        no_retries.retries = False
        with client.ApiClient(no_retries) as api, pytest.raises(client.ApiException) as too_many:
            client.CoreV1Api(api).list_namespace()
        assert too_many.value.status == 429
        # The admin is exempt from APF and untouched.
        assert cluster.kubectl("get", "namespaces").returncode == 0
        # An API server restart drops the held request; the throttle takes it again.
        faulty.restart_apiserver()
        _eventually(lambda: statuses(1) == {429}, PROPAGATION_TIMEOUT, "429 after the restart")
        assert statuses(20) == {429}
    assert account.kubectl("get", "namespaces").returncode == 0
    assert applied < PROPAGATION_TIMEOUT
    for kind in ("flowschema", "prioritylevelconfiguration"):
        assert cluster.kubectl("get", kind, throttled.flow_schema).returncode != 0
