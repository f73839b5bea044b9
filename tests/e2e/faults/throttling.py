"""API Priority and Fairness throttling: every request of one ServiceAccount gets 429.

A PriorityLevelConfiguration with nominalConcurrencyShares 0, lendablePercent 0,
borrowingLimitPercent 0 and limitResponse Reject is a "jail", but not a wall: the
queue set still admits a request whenever nothing of that priority level is
executing (kube-apiserver v1.36 queueset.canAccommodateSeatsLocked), so a client
sending one request at a time, as kubectl or a controller's retry loop does, is
never throttled. Measured here: 40 sequential ``kubectl get ns`` of the jailed
ServiceAccount in 12 s, all 200.

So throttle() also keeps one request of the same subject executing in that
priority level: a POST of a SelfSubjectReview (allowed to every authenticated
user, so this works for an account without RBAC too) whose body never finishes,
which holds the seat while the API server waits for the body. With that seat
taken, every other request of the subject, resource or non-resource, watch
included, is rejected at once with 429 Too Many Requests. The held request is
not limited by the API server's one-minute request timeout (measured: held for
75 s, still 429), so it is only taken again when the API server drops it, e.g. on
a restart, or when a check (one request of the subject a second, which must get
429) finds it ineffective. Measured: 6816 requests of the subject sent
back-to-back for 10 s, all 429; after an API server restart the subject's
requests get 200 until the hold is back (see test_controls.py).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import yaml

from tests.controlplane import Cluster

FLOWCONTROL_API = "flowcontrol.apiserver.k8s.io/v1"
#: Lower numbers match first; 1 is the built-in `exempt` schema (system:masters) and
#: ties go to the alphabetically first name, so ours ("faults-…") also beats `probes`.
MATCHING_PRECEDENCE = 2
FLOW_SCHEMA_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
_HOLD_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
_HOLD_BODY_LENGTH = 1024
#: A held request gets no answer; a rejected one gets its 429 within milliseconds.
_HOLD_PROBE = 0.3
_RETRY_REJECTED = 0.005
_RETRY_UNREACHABLE = 0.1
_STOP_POLL = 0.1
_CHECK_EVERY = 1.0
_CHECK_PATH = "/version"
_REQUEST_TIMEOUT = 5.0


class ServiceAccountRef(NamedTuple):
    namespace: str
    name: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class Throttled:
    """What throttle() installed, for assertions and debugging."""

    subject: ServiceAccountRef
    flow_schema: str
    priority_level: str


@contextlib.contextmanager
def throttle(
    cluster: Cluster,
    subject: tuple[str, str],
    *,
    apply_timeout: float = 15.0,
) -> Iterator[Throttled]:
    """Make every request of the ServiceAccount ``subject`` = (namespace, name) get 429.

    ``cluster`` must be able to create flow-control objects (the admin). The
    ServiceAccount must exist: a token of it holds the seat (see the module doc).
    On entry this returns only once a request of the subject really got 429, and
    on exit only once the subject's requests are no longer classified into the
    removed FlowSchema; both waits are bounded by ``apply_timeout`` (APF reads its
    configuration through an informer, so changes take a moment).
    """
    account = ServiceAccountRef(*subject)
    name = f"faults-throttle-{account.namespace}-{account.name}"
    endpoint = _Endpoint.of(cluster, cluster.create_token(*account, duration="2h"))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_manifests(account, name)), check=True)
    flow_schema_uid = cluster.kubectl(
        "get", "flowschema", name, "-o", "jsonpath={.metadata.uid}", check=True
    ).stdout
    holder = _SeatHolder(endpoint)
    try:
        _wait(
            lambda: endpoint.get("/version")[1] == flow_schema_uid,
            apply_timeout,
            f"API Priority and Fairness to classify {account.username} into {name}",
        )
        holder.start()
        _wait(holder.holding.is_set, apply_timeout, "the seat-holding request to be admitted")
        _wait(
            lambda: endpoint.get("/api/v1/namespaces")[0] == 429,
            apply_timeout,
            f"a request of {account.username} to get 429",
        )
        yield Throttled(account, name, name)
    finally:
        holder.stop()
        for kind in ("flowschema", "prioritylevelconfiguration"):
            cluster.kubectl("delete", kind, name, "--ignore-not-found", check=True)
        _wait(
            lambda: endpoint.get("/version")[1] != flow_schema_uid,
            apply_timeout,
            f"API Priority and Fairness to forget {name}",
        )


def _manifests(account: ServiceAccountRef, name: str) -> dict[str, object]:
    priority_level = {
        "apiVersion": FLOWCONTROL_API,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {
            "type": "Limited",
            "limited": {
                # No seats of its own, none borrowed: nothing runs beside the holder.
                "nominalConcurrencyShares": 0,
                "lendablePercent": 0,
                "borrowingLimitPercent": 0,
                # Reject at once rather than queue: the client sees 429, not a
                # slow request that times out in a queue.
                "limitResponse": {"type": "Reject"},
            },
        },
    }
    flow_schema = {
        "apiVersion": FLOWCONTROL_API,
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": MATCHING_PRECEDENCE,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {
                                "namespace": account.namespace,
                                "name": account.name,
                            },
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }
    return {"apiVersion": "v1", "kind": "List", "items": [priority_level, flow_schema]}


@dataclass(frozen=True)
class _Endpoint:
    """The API server as the subject sees it: address, CA and bearer token."""

    host: str
    port: int
    context: ssl.SSLContext
    token: str

    @classmethod
    def of(cls, cluster: Cluster, token: str) -> _Endpoint:
        document = yaml.safe_load(cluster.kubeconfig.read_text())
        server = cluster.server()
        entry = next(c["cluster"] for c in document["clusters"] if c["cluster"]["server"] == server)
        if "certificate-authority-data" in entry:
            context = ssl.create_default_context(
                cadata=base64.b64decode(entry["certificate-authority-data"]).decode()
            )
        else:
            ca = cluster.kubeconfig.parent / entry["certificate-authority"]
            context = ssl.create_default_context(cafile=str(ca))
        parts = urlsplit(server)
        assert parts.hostname is not None and parts.port is not None, server
        return cls(parts.hostname, parts.port, context, token)

    def get(self, path: str) -> tuple[int, str | None]:
        """(status, FlowSchema UID the request was classified into); status 0 if unreachable."""
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=_REQUEST_TIMEOUT
        )
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader(FLOW_SCHEMA_HEADER)
        except OSError:
            return 0, None
        finally:
            connection.close()


class _SeatHolder:
    """Keeps one request of the subject executing: headers sent, body never finished."""

    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        self.holding = threading.Event()
        #: How often the seat was taken; more than once means the API server ended a
        #: held request (e.g. it restarted) and the seat was taken again.
        self.acquisitions = 0
        #: Holds given up because the subject's requests were not rejected.
        self.ineffective = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apf-seat-holder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(2 * _REQUEST_TIMEOUT)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                held = self._try_hold()
            except OSError:
                self._stopping.wait(_RETRY_UNREACHABLE)  # the API server is away
                continue
            if held is None:
                # Another request of the subject has the seat right now; it will be
                # done in milliseconds.
                self._stopping.wait(_RETRY_REJECTED)
                continue
            self.acquisitions += 1
            with held:
                self._hold(held)
            # Closing the connection fails the API server's body read, which frees the
            # seat; unless we are stopping, the loop takes it again straight away.

    def _try_hold(self) -> ssl.SSLSocket | None:
        """The held connection, or None if the request was rejected (429)."""
        raw = socket.create_connection(
            (self.endpoint.host, self.endpoint.port), timeout=_REQUEST_TIMEOUT
        )
        sock = self.endpoint.context.wrap_socket(raw, server_hostname=self.endpoint.host)
        try:
            sock.sendall(
                (
                    f"POST {_HOLD_PATH} HTTP/1.1\r\n"
                    f"Host: {self.endpoint.host}:{self.endpoint.port}\r\n"
                    f"Authorization: Bearer {self.endpoint.token}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {_HOLD_BODY_LENGTH}\r\n\r\n{{"
                ).encode()
            )
            # Admitted means no answer: the handler waits for the rest of the body.
            # A rejection (429) comes back within milliseconds.
            answered = _answered(sock, _HOLD_PROBE)
        except BaseException:
            sock.close()
            raise
        if answered:
            sock.close()
            return None
        return sock

    def _hold(self, sock: ssl.SSLSocket) -> None:
        """Until stop(), until the API server ends the held request, or until the
        subject's requests stop getting 429 (checked at once, then every second).

        Measured: the API server keeps such a request (and its seat) for as long as
        the connection lasts, past its one-minute request timeout (checked for 75 s),
        so nothing needs renewing while it is up. The check is for a request sent
        while the API server starts: it is admitted before the FlowSchema is loaded,
        so it holds a seat of another priority level and jails nothing.
        """
        next_check = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() >= next_check:
                if self.endpoint.get(_CHECK_PATH)[0] != 429:
                    self.ineffective += 1
                    return
                self.holding.set()
                next_check = time.monotonic() + _CHECK_EVERY
            if _answered(sock, _STOP_POLL):
                return


def _answered(sock: ssl.SSLSocket, wait: float) -> bool:
    """Whether the server answered or closed within ``wait`` seconds.

    A recv, not a select on the socket: TLS 1.3 session tickets arrive after the
    handshake and make the raw socket readable without any answer.
    """
    sock.settimeout(wait)
    try:
        sock.recv(1)
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: as good as an answer, the request is over
    return True  # an answer, or b"" for the end of the connection


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
