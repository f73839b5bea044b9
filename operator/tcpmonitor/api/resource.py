"""The whole ``TcpMonitor`` object as it appears in a manifest or from the API server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import GROUP, VERSION
from .spec import OBJECT_NAME_PATTERN, TcpMonitorSpec
from .status import TcpMonitorStatus

API_VERSION = f"{GROUP}/{VERSION}"


class ObjectMeta(BaseModel):
    """The parts of metadata we use; the rest of a real object's metadata is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=253, pattern=OBJECT_NAME_PATTERN)
    namespace: str = Field(default="default", min_length=1, max_length=63)
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TcpMonitor(BaseModel):
    """apiVersion, kind, metadata, spec and (when read from a cluster) status."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    api_version: Literal["tcpmonitor.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TcpMonitor"]
    metadata: ObjectMeta
    spec: TcpMonitorSpec
    status: TcpMonitorStatus | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): how schedulers and metrics identify a monitor."""
        return (self.metadata.namespace, self.metadata.name)
