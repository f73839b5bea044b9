"""What a test needs to talk to a cluster, whoever started it.

The same object describes the harness's own control plane and an existing cluster
named by ``TCPMONITOR_E2E_KUBECONFIG``, so tests never branch on where the API
server came from.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.controlplane.build import REPO_ROOT

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

CRD_DIR = REPO_ROOT / "crds"
LOOPBACK_POLICY = "e2e-allow-loopback"
POLICY_TEST_LABEL = "tcpmonitor.dev/e2e-policy"
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr:\n{self.stderr}"


@dataclass(frozen=True)
class Cluster:
    """A reachable API server plus the kubectl and credentials to use it.

    ``pinned_version`` is the Kubernetes version of the binaries serving the cluster
    when this harness started it, and None for an external cluster, whose version
    we don't control.
    """

    kubeconfig: Path
    kubectl_binary: Path
    pinned_version: str | None = None

    def kubectl(
        self,
        *args: str,
        check: bool = False,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with ``check`` a failure raises KubectlError."""
        command = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # A stray KUBECONFIG or kubectl plugin config in the developer's shell
            # must not leak into the tests.
            env={key: value for key, value in os.environ.items() if key != "KUBECONFIG"},
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def api_client(self) -> ApiClient:
        """A new kubernetes ApiClient for this cluster's kubeconfig identity.

        A fresh client each time, so a test can close it (or change its
        configuration) without affecting others. Imported lazily so the harness
        itself, e.g. ``--build-only`` in CI, works without the kubernetes package.
        """
        from kubernetes import config  # noqa: PLC0415

        # Untyped in some kubernetes releases, typed in others.
        client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call,unused-ignore]
            config_file=str(self.kubeconfig)
        )
        return client

    def server(self) -> str:
        """The API server URL of the kubeconfig's current context."""
        return str(self._current_cluster()["server"])

    def create_token(self, namespace: str, service_account: str, duration: str = "10m") -> str:
        """Mint a ServiceAccount token through the TokenRequest API."""
        result = self.kubectl(
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            f"--duration={duration}",
            check=True,
        )
        return result.stdout.strip()

    def as_token(self, token: str, kubeconfig: Path) -> Cluster:
        """The same cluster seen through a bearer token, e.g. a ServiceAccount's.

        A separate kubeconfig is needed because the admin kubeconfig's client
        certificate would still be presented alongside ``--token`` and win.
        """
        cluster = {key: value for key, value in self._current_cluster().items()}
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "token"}}],
            "current-context": "test",
        }
        kubeconfig.touch(mode=0o600)
        kubeconfig.write_text(yaml.safe_dump(document))
        return Cluster(kubeconfig, self.kubectl_binary, self.pinned_version)

    def install_crds(self, directory: Path = CRD_DIR, timeout: float = 60.0) -> list[str]:
        """Apply every manifest in ``directory`` and wait until each CRD is Established.

        Returns the applied CRD names (``customresourcedefinition.../<name>``); an
        empty or missing directory is not an error. Server-side apply avoids the
        256 KiB last-applied annotation limit that large CRDs hit.
        """
        manifests = (
            sorted(p for p in directory.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
            if directory.is_dir()
            else []
        )
        if not manifests:
            return []
        files = [arg for path in manifests for arg in ("-f", str(path))]
        applied = self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=tcpmonitor-tests",
            "-o",
            "name",
            *files,
            check=True,
        ).stdout.split()
        crds = [name for name in applied if name.startswith("customresourcedefinition")]
        if crds:
            self.kubectl(
                "wait",
                "--for=condition=Established",
                f"--timeout={timeout:.0f}s",
                *crds,
                check=True,
                timeout=timeout + 10,
            )
        return crds

    def allow_loopback_targets(self) -> None:
        """A TcpMonitorPolicy allowing loopback targets, which the operator refuses by default.

        Every target of the tests listens on loopback. Namespaces labelled
        ``tcpmonitor.dev/e2e-policy`` are left out: the target policy's own tests put their
        monitors there, to see the defaults and their own policies at work.
        """
        policy = {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitorPolicy",
            "metadata": {"name": LOOPBACK_POLICY},
            "spec": {
                "namespaceSelector": {
                    "matchExpressions": [{"key": POLICY_TEST_LABEL, "operator": "DoesNotExist"}]
                },
                "rules": [
                    {"name": "loopback", "action": "Allow", "cidrs": ["127.0.0.0/8", "::1/128"]}
                ],
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(policy), check=True)

    def _current_cluster(self) -> dict[str, Any]:
        config = yaml.safe_load(self.kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster: dict[str, Any] = next(
            c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"]
        )
        if "certificate-authority" in cluster:
            # Relative CA paths are relative to the kubeconfig they came from.
            ca = Path(cluster["certificate-authority"])
            cluster = {**cluster, "certificate-authority": str(self.kubeconfig.parent / ca)}
        return cluster
