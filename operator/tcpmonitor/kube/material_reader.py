"""References resolved against the API server: ``get`` on single Secrets and ConfigMaps.

Only ``get`` (no list, no watch): the operator never holds every Secret of a namespace in
memory, and RBAC can say exactly that. A monitor waiting for a missing Secret is retried by the
runtime instead of being woken by a watch.
"""

from __future__ import annotations

import base64

from kubernetes.client.exceptions import ApiException

from ..api import TcpMonitorSpec
from ..probe import ProbeMaterial
from ..probe.material import ReferenceMap, referenced_names, resolve_material
from .api_client import KubeApi, describe_api_error


class ApiResolver:
    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def resolve(self, spec: TcpMonitorSpec, namespace: str) -> ProbeMaterial:
        secrets, config_maps = referenced_names(spec)
        store = ReferenceMap()
        for name in secrets:
            try:
                data = await self._secret(namespace, name)
            except ApiException as exc:
                # Said in the log only: status and Events read as for a missing Secret.
                detail = f"Secret {namespace}/{name}: {describe_api_error(exc)}"
                store.unreadable[(namespace, name)] = detail
                continue
            if data is not None:
                store.secrets[(namespace, name)] = data
        for name in config_maps:
            if (cm := await self._config_map(namespace, name)) is not None:
                store.config_maps[(namespace, name)] = cm
        return resolve_material(spec, namespace, store)

    async def _secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            secret = await self.api.call(self.api.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    async def _config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            cm = await self.api.call(self.api.core.read_namespaced_config_map, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise RuntimeError(f"ConfigMap {namespace}/{name}: {describe_api_error(exc)}") from None
        return dict(cm.data or {})
