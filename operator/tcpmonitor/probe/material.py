"""Resolving what a spec only references (Secrets, ConfigMaps) into probe material.

The lookup is behind a small protocol so the same rules (which keys, which errors) serve the
operator, which reads the API server, and the command line, which reads manifests on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..api import Reason, TcpMonitorSpec
from .plan import PlanError, ProbeMaterial, secret_unavailable
from .tls import ClientCertificate

REFERENCE_NOT_FOUND = Reason.REFERENCE_NOT_FOUND.value
REFERENCE_UNREADABLE = Reason.REFERENCE_UNREADABLE.value


class ReferenceStore(Protocol):
    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def secret_problem(self, namespace: str, name: str) -> str | None:
        """Why the Secret could not be read (the API's answer, for the log), or None."""
        ...

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...


@dataclass
class ReferenceMap:
    """Secrets and ConfigMaps held in memory, keyed by (namespace, name): read from manifest
    files, or fetched from the API server for one resolution."""

    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict, repr=False)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # Secrets the API would not give (403, or any error but 404): what it said, for the log.
    unreadable: dict[tuple[str, str], str] = field(default_factory=dict)

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get((namespace, name))

    def secret_problem(self, namespace: str, name: str) -> str | None:
        return self.unreadable.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get((namespace, name))


def _secret_key(
    store: ReferenceStore, namespace: str, name: str, key: str, *, field: str, lenient: bool
) -> bytes | None:
    """The key's bytes. Every way of not getting them says the same (:func:`secret_unavailable`);
    only the reason tells the API refusing the operator (ReferenceUnreadable, the same whether or
    not the Secret exists) from the Secret or key missing (ReferenceNotFound)."""
    problem = store.secret_problem(namespace, name)
    if problem is not None:
        raise PlanError(field, secret_unavailable(name, key), REFERENCE_UNREADABLE, detail=problem)
    data = store.secret(namespace, name)
    if data is None and lenient:
        return None
    if data is None or key not in data:
        raise PlanError(field, secret_unavailable(name, key), REFERENCE_NOT_FOUND)
    return data[key]


def referenced_names(spec: TcpMonitorSpec) -> tuple[frozenset[str], frozenset[str]]:
    """The Secrets and the ConfigMaps (names, in the monitor's namespace) a probe reads."""
    secrets: set[str] = set()
    config_maps: set[str] = set()
    if spec.send_from is not None:
        secrets.add(spec.send_from.secret_key_ref.name)
    tls = spec.tls
    if tls is not None and tls.enabled:
        if tls.ca_secret_ref is not None:
            secrets.add(tls.ca_secret_ref.name)
        if tls.ca_config_map_ref is not None:
            config_maps.add(tls.ca_config_map_ref.name)
        if tls.client_cert_secret_ref is not None:
            secrets.add(tls.client_cert_secret_ref.name)
    return frozenset(secrets), frozenset(config_maps)


def has_references(spec: TcpMonitorSpec) -> bool:
    """Whether probing needs anything outside the spec (and so a periodic re-read)."""
    return any(referenced_names(spec))


def resolve_material(
    spec: TcpMonitorSpec, namespace: str, store: ReferenceStore, *, lenient: bool = False
) -> ProbeMaterial:
    """Read every referenced value; with ``lenient`` an object that is absent is skipped
    (offline validation cannot see the cluster) but a present object missing a key is not."""
    payload = None
    if spec.send_from is not None:
        ref = spec.send_from.secret_key_ref
        payload = _secret_key(
            store, namespace, ref.name, ref.key, field="spec.sendFrom.secretKeyRef", lenient=lenient
        )
    ca_pem = None
    client = None
    tls = spec.tls
    if tls is not None and tls.enabled:
        if tls.ca_secret_ref is not None:
            ref = tls.ca_secret_ref
            raw = _secret_key(
                store, namespace, ref.name, ref.key, field="spec.tls.caSecretRef", lenient=lenient
            )
            ca_pem = raw.decode("utf-8", "replace") if raw is not None else None
        elif tls.ca_config_map_ref is not None:
            cm_ref = tls.ca_config_map_ref
            data = store.config_map(namespace, cm_ref.name)
            if data is None and not lenient:
                raise PlanError(
                    "spec.tls.caConfigMapRef",
                    f"ConfigMap {namespace}/{cm_ref.name} not found",
                    REFERENCE_NOT_FOUND,
                )
            if data is not None:
                if cm_ref.key not in data:
                    raise PlanError(
                        "spec.tls.caConfigMapRef",
                        f"ConfigMap {namespace}/{cm_ref.name} has no key {cm_ref.key}",
                        REFERENCE_NOT_FOUND,
                    )
                ca_pem = data[cm_ref.key]
        if tls.client_cert_secret_ref is not None:
            name = tls.client_cert_secret_ref.name
            field = "spec.tls.clientCertSecretRef"
            cert = _secret_key(store, namespace, name, "tls.crt", field=field, lenient=lenient)
            key = _secret_key(store, namespace, name, "tls.key", field=field, lenient=lenient)
            if cert is not None and key is not None:
                client = ClientCertificate(cert_pem=cert, key_pem=key)
    return ProbeMaterial(payload=payload, ca_pem=ca_pem, client_certificate=client)
