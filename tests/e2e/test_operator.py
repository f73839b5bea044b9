"""The operator end to end: a real process, a real kube-apiserver, real loopback targets."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest

from tests.controlplane import Cluster

from .operator_process import (
    Listener,
    OperatorProcess,
    apply,
    condition,
    events,
    eventually,
    get,
    reasons,
    state_is,
    status,
    tcpmonitor,
)


@pytest.fixture(scope="module")
def operator(
    control_plane: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        control_plane, tmp_path_factory.mktemp("operator"), "--heartbeat", "60s"
    )
    yield process
    process.stop()


@pytest.fixture
def target() -> Iterator[Listener]:
    listener = Listener().start()
    yield listener
    listener.stop()


def test_monitor_lifecycle_status_conditions_events_metrics(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    apply(
        control_plane,
        tcpmonitor(
            namespace,
            "web",
            port=target.port,
            assertions=[{"source": "ResponseData", "comparison": "Contains", "target": "hello"}],
        ),
    )
    st = eventually(lambda: state_is(control_plane, namespace, "web", "Up"), 10, message="Up")
    assert st["observedGeneration"] == 1
    assert st["lastResult"]["remoteAddress"] == f"127.0.0.1:{target.port}"
    assert st["lastResult"]["response"]["excerpt"] == "hello\\n"
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Reachable")["status"] == "True"
    assert condition(st, "Degraded")["status"] == "False"
    assert st["consecutiveSuccesses"] >= 1 and st["lastSuccessTime"]
    eventually(
        lambda: "TargetUp" in reasons(control_plane, namespace, "web"), 5, message="TargetUp event"
    )
    up_event = events(control_plane, namespace, "web")[0]
    assert up_event["type"] == "Normal"
    assert up_event["reportingController"] == "tcpmonitor.dev/operator"
    assert up_event["reportingInstance"] == "tcpmonitor-operator-e2e"
    assert f"127.0.0.1:{target.port}" in up_event["note"] and "total" in up_event["note"]
    labels = {"namespace": namespace, "name": "web"}
    assert operator.metric("tcpmonitor_probe_success", **labels) == 1
    assert operator.metric("tcpmonitor_state", **labels, state="Up") == 1
    assert operator.metric("tcpmonitor_probe_phase_duration_seconds", **labels, phase="connect")

    # A spec change is probed at once and reported with the new generation.
    apply(control_plane, tcpmonitor(namespace, "web", port=1))
    st = eventually(lambda: state_is(control_plane, namespace, "web", "Down"), 5, message="Down")
    assert st["observedGeneration"] == 2
    assert st["lastResult"]["error"]["code"] == "CONNECTION_REFUSED"
    assert condition(st, "Ready")["status"] == "True"  # a down target is not an unready monitor
    assert condition(st, "Reachable")["reason"] == "ConnectionRefused"
    eventually(
        lambda: reasons(control_plane, namespace, "web") == ["TargetUp", "TargetDown"],
        5,
        message="TargetDown event",
    )
    down_event = events(control_plane, namespace, "web")[-1]
    assert down_event["type"] == "Warning" and "CONNECTION_REFUSED" in down_event["note"]

    # kopf wrote nothing of its own into the object.
    obj = get(control_plane, namespace, "web")
    assert not obj["metadata"].get("finalizers")
    assert not [a for a in obj["metadata"].get("annotations", {}) if "kopf" in a]
    assert set(obj["status"]) <= {
        "observedGeneration",
        "state",
        "message",
        "latency",
        "conditions",
        "lastResult",
        "lastProbeTime",
        "lastTransitionTime",
        "lastSuccessTime",
        "lastFailureTime",
        "consecutiveSuccesses",
        "consecutiveFailures",
        "skippedProbes",
    }

    # Deleting stops probing and removes the monitor's metric series.
    control_plane.kubectl("delete", "tcpmonitor", "web", "-n", namespace, check=True)
    eventually(
        lambda: f'namespace="{namespace}"' not in operator.metrics(), 5, message="series removed"
    )


def test_transitions_arrive_within_interval_plus_timeout(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    apply(
        control_plane,
        tcpmonitor(namespace, "flappy", port=target.port, interval="2s", timeout="1s"),
    )
    eventually(lambda: state_is(control_plane, namespace, "flappy", "Up"), 10, message="Up")
    bound = 2 + 1 + 1  # interval + timeout + 1 s
    target.stop()
    stopped = time.monotonic()
    eventually(
        lambda: state_is(control_plane, namespace, "flappy", "Down"),
        bound,
        0.05,
        message="Down within interval + timeout + 1s",
    )
    down_after = time.monotonic() - stopped
    target.start()
    started = time.monotonic()
    eventually(
        lambda: state_is(control_plane, namespace, "flappy", "Up"),
        bound,
        0.05,
        message="Up within interval + timeout + 1s",
    )
    up_after = time.monotonic() - started
    assert down_after < bound and up_after < bound
    assert reasons(control_plane, namespace, "flappy") == ["TargetUp", "TargetDown", "TargetUp"]


def test_two_hundred_monitors_all_get_a_status(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    monitors = [
        tcpmonitor(namespace, f"m{i:03d}", port=target.port, interval="30s") for i in range(200)
    ]
    apply(control_plane, *monitors)

    def all_up() -> bool:
        out = control_plane.kubectl("get", "tcpmonitors", "-n", namespace, "-o", "json", check=True)
        items = json.loads(out.stdout)["items"]
        return len(items) == 200 and all(i.get("status", {}).get("state") == "Up" for i in items)

    eventually(all_up, 60, 0.5, message="200 monitors Up")


def test_specs_the_schema_cannot_catch(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    hello = [{"source": "ResponseData", "comparison": "Contains", "target": "hello"}]
    # A Secret that exists but lacks the key (created first, so the problem is stable).
    apply(
        control_plane,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "other", "namespace": namespace},
            "stringData": {"present": "x"},
        },
    )
    apply(
        control_plane,
        tcpmonitor(namespace, "healthy", port=target.port),
        tcpmonitor(
            namespace,
            "no-secret",
            port=target.port,
            assertions=hello,
            sendFrom={"secretKeyRef": {"name": "payload", "key": "data"}},
        ),
        tcpmonitor(
            namespace,
            "no-key",
            port=target.port,
            assertions=hello,
            sendFrom={"secretKeyRef": {"name": "other", "key": "missing"}},
        ),
        tcpmonitor(
            namespace,
            "bad-regex",
            port=target.port,
            # Go's regexp (the API server) compiles it; RE2 within its memory bound does not.
            assertions=[
                {"source": "ResponseData", "comparison": "Matches", "target": r"\pL{1000}"}
            ],
        ),
        tcpmonitor(namespace, "bad-base64", port=target.port, sendBase64="abc"),
        tcpmonitor(
            namespace,
            "no-ca",
            port=target.port,
            tls={"enabled": True, "caConfigMapRef": {"name": "ca", "key": "ca.crt"}},
        ),
    )

    def ready_reason(name: str) -> tuple[str, str] | None:
        ready = condition(status(control_plane, namespace, name), "Ready")
        return (ready["status"], ready["reason"]) if ready else None

    expected = {
        "no-secret": ("False", "ReferenceNotFound"),
        "no-key": ("False", "ReferenceNotFound"),
        "bad-regex": ("False", "InvalidSpec"),
        "bad-base64": ("False", "InvalidSpec"),
        "no-ca": ("False", "ReferenceNotFound"),
    }
    for name, want in expected.items():
        eventually(lambda n=name, w=want: ready_reason(n) == w, 10, message=f"{name} {want}")
    assert "Secret" in condition(status(control_plane, namespace, "no-secret"), "Ready")["message"]
    eventually(
        lambda: state_is(control_plane, namespace, "healthy", "Up"), 10, message="others unaffected"
    )
    time.sleep(6)  # longer than the retry period: the Warning must still have been posted once
    for name in expected:
        assert reasons(control_plane, namespace, name) == ["InvalidSpec"], name
    assert operator.process.poll() is None

    # Recovery: the Secret appears, the spec is fixed.
    apply(
        control_plane,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "payload", "namespace": namespace},
            "data": {"data": base64.b64encode(b"ping").decode()},
        },
    )
    apply(
        control_plane,
        tcpmonitor(
            namespace,
            "bad-regex",
            port=target.port,
            assertions=[{"source": "ResponseData", "comparison": "Matches", "target": "^hel+o"}],
        ),
    )
    for name in ("no-secret", "bad-regex"):
        st = eventually(
            lambda n=name: state_is(control_plane, namespace, n, "Up"),
            15,
            message=f"{name} recovers",
        )
        assert condition(st, "Ready")["status"] == "True"


def test_paused_monitor_stops_probing(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    apply(
        control_plane, tcpmonitor(namespace, "p", port=target.port, interval="1s", timeout="500ms")
    )
    eventually(lambda: state_is(control_plane, namespace, "p", "Up"), 10, message="Up")
    apply(
        control_plane,
        tcpmonitor(namespace, "p", port=target.port, interval="1s", timeout="500ms", paused=True),
    )
    st = eventually(lambda: state_is(control_plane, namespace, "p", "Paused"), 5, message="Paused")
    assert condition(st, "Ready")["reason"] == "Paused"
    labels = {"namespace": namespace, "name": "p", "result": "Up"}
    before = operator.metric("tcpmonitor_probes_total", **labels)
    time.sleep(2.5)
    assert operator.metric("tcpmonitor_probes_total", **labels) == before


def test_server_side_apply_by_another_manager_changes_nothing(
    control_plane: Cluster, operator: OperatorProcess, namespace: str, target: Listener
) -> None:
    manifest = json.dumps(tcpmonitor(namespace, "gitops", port=target.port))
    control_plane.kubectl(
        "apply", "--server-side", "--field-manager=argocd", "-f", "-", input=manifest, check=True
    )
    eventually(lambda: state_is(control_plane, namespace, "gitops", "Up"), 10, message="Up")
    before = get(control_plane, namespace, "gitops")
    again = control_plane.kubectl(
        "apply", "--server-side", "--field-manager=argocd", "-f", "-", input=manifest, check=True
    )
    assert "serverside-applied" in again.stdout
    other = control_plane.kubectl(
        "apply", "--server-side", "--field-manager=flux", "-f", "-", input=manifest
    )
    assert other.returncode == 0, other.stderr  # no conflict: nobody else owns spec fields
    after = get(control_plane, namespace, "gitops")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert after["spec"] == before["spec"]
    shown = control_plane.kubectl(
        "get", "tcpmonitor", "gitops", "-n", namespace, "-o", "json", "--show-managed-fields",
        check=True,
    )  # fmt: skip
    fields = json.loads(shown.stdout)["metadata"]["managedFields"]
    # The operator owns status only; spec is owned by the GitOps managers alone.
    spec_owners = {m["manager"] for m in fields if "f:spec" in json.dumps(m.get("fieldsV1", {}))}
    assert spec_owners == {"argocd", "flux"}
    status_owners = {m["manager"] for m in fields if m.get("subresource") == "status"}
    assert status_owners and not status_owners & {"argocd", "flux"}
