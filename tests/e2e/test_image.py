"""The operator image, built here and run the way the chart runs it, against the test cluster.

There is no Docker engine and no registry here: `.ci/provision-image` installs buildah, podman
and runc and imports a base built from Debian's packages; `.ci/build-image` builds the unchanged
Dockerfile on it (``--build-arg BASE_IMAGE``). The container then runs with a read-only root
filesystem, only ``/tmp`` writable, as UID 65532, on the host network so that it reaches the
loopback API server and its metrics port is the host's. It must reconcile a monitor to a status
and serve metrics, which is what the chart's pods do.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.controlplane import Cluster

from .conftest import unavailable
from .operator_process import Listener, apply, eventually, free_port, state_is, tcpmonitor

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / ".ci" / "build-image"
BASE = os.environ.get("TCPMONITOR_IMAGE_BASE", "localhost/tcpmonitor-base:bookworm")
TAG = "localhost/tcpmonitor-operator:e2e"
# crun fails here on rlimits and hybrid cgroups; runc works.
RUNC = "/usr/sbin/runc"
UID = 65532

pytestmark = pytest.mark.image


@dataclass(frozen=True)
class Image:
    podman: str
    tag: str
    build_seconds: float

    def podman_run(self, name: str, *options: str) -> list[str]:
        # podman asks runc for RLIMIT_NOFILE/NPROC above what this machine's hard limits allow
        # unless told; the process's own limits (nproc capped: raising it is refused) fit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return [
            self.podman,
            "--runtime",
            RUNC,
            "run",
            "--name",
            name,
            "--ulimit",
            f"nofile={soft}:{hard}",
            "--ulimit",
            "nproc=4096:4096",
            *options,
        ]


@pytest.fixture(scope="module")
def image() -> Image:
    tools = {tool: shutil.which(tool) for tool in ("buildah", "podman")}
    if os.geteuid() != 0 or not all(tools.values()) or not os.access(RUNC, os.X_OK):
        unavailable(
            "the image test needs root, buildah, podman and runc: run .ci/provision-image "
            "(Debian: apt-get install buildah podman runc mmdebstrap)"
        )
    podman = tools["podman"]
    assert podman
    known = subprocess.run([podman, "image", "exists", BASE], check=False, timeout=60)
    if known.returncode != 0:
        unavailable(f"no base image {BASE}: run .ci/provision-image")
    started = time.monotonic()
    # With the layers cached (.ci/run has just built the same sources) this takes seconds.
    build = subprocess.run(
        ["bash", str(BUILD), TAG],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return Image(podman, TAG, time.monotonic() - started)


@pytest.fixture
def target() -> Iterator[Listener]:
    listener = Listener().start()
    yield listener
    listener.stop()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_image_reconciles_a_monitor_read_only_as_non_root(
    image: Image,
    control_plane: Cluster,
    namespace: str,
    target: Listener,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    # The kubeconfig (certificates inline) must be readable by the container's UID.
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(control_plane.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)
    tmp_path.chmod(0o755)

    port = free_port()
    name = f"tcpmonitor-e2e-{port}"
    command = image.podman_run(
        name,
        "--rm",
        "--detach",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp:rw,nosuid,nodev,size=16m,mode=1777",
        "--user",
        str(UID),
        "--network",
        "host",
        "--env",
        "POD_NAME=tcpmonitor-image-e2e",
        "--volume",
        f"{kubeconfig}:/kubeconfig:ro",
        image.tag,
        "operator",
        "--kubeconfig",
        "/kubeconfig",
        # Only this test's namespace: earlier tests' monitors linger in Terminating namespaces.
        "--namespace",
        namespace,
        "--metrics-address",
        "127.0.0.1",
        "--metrics-port",
        str(port),
    )
    logs = ""
    started = time.monotonic()
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr

        def ready() -> bool:
            state = subprocess.run(
                [image.podman, "inspect", "--format", "{{.State.Running}}", name],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert state.stdout.strip() == "true", f"container exited: {state.stderr}"
            return http_get(port, "/readyz")[0] == 200

        eventually(ready, 60, interval=0.1, message="/readyz of the container")
        ready_seconds = time.monotonic() - started

        apply(control_plane, tcpmonitor(namespace, "web", port=target.port))
        st = eventually(lambda: state_is(control_plane, namespace, "web", "Up"), 30, message="Up")
        assert st["lastResult"]["remoteAddress"] == f"127.0.0.1:{target.port}"
        assert target.accepted, "the probe came from the container, to our listener"

        series = f'tcpmonitor_probe_success{{name="web",namespace="{namespace}"}} 1.0'

        def scraped() -> str | None:
            text = http_get(port, "/metrics")[1]
            return text if series in text else None

        metrics = eventually(scraped, 10, message="the monitor's series on /metrics")
        assert "tcpmonitor_state{" in metrics

        # As the chart runs it: UID 65532, nothing writable but /tmp, no pip in the image.
        probe = subprocess.run(
            [
                image.podman,
                "exec",
                name,
                "sh",
                "-c",
                "id -u; touch /opt/tcpmonitor/x 2>&1; touch /tmp/x && echo tmp-ok; "
                "python -c 'import pip' 2>&1 | tail -1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = probe.stdout.splitlines()
        assert lines[0] == str(UID), probe.stdout + probe.stderr
        assert "Read-only file system" in lines[1]
        assert lines[2] == "tmp-ok"
        assert "No module named 'pip'" in lines[3]
    finally:
        logs_run = subprocess.run(
            [image.podman, "logs", name], capture_output=True, text=True, timeout=60, check=False
        )
        logs = (logs_run.stdout + logs_run.stderr)[-5000:]
        subprocess.run(
            [image.podman, "rm", "--force", "--time", "5", name],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert "Traceback" not in logs, logs

    inspect = subprocess.run(
        [image.podman, "image", "inspect", image.tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (details,) = json.loads(inspect.stdout)
    size_mb = details["Size"] / 1e6
    assert details["Config"]["User"] == f"{UID}:{UID}"
    for key, value in {
        "image_size_mb": round(size_mb),
        "image_start_to_ready_seconds": round(ready_seconds, 2),
        "image_build_seconds": round(image.build_seconds, 1),
    }.items():
        record_property(key, value)
    print(
        f"image {image.tag}: {size_mb:.0f} MB, start to /readyz {ready_seconds:.2f} s, "
        f"build {image.build_seconds:.1f} s"
    )
