"""tcpmonitor-operator: Checkly-style TCP monitors as a native Kubernetes resource.

Layers, one direction: ``api`` (pydantic models) is shared by all; ``probe`` (asyncio and ssl,
nothing Kubernetes) <- ``scheduling`` <- ``kube`` (kopf glue) and ``standalone``; ``cli`` on top.
"""

__version__ = "0.1.0"
GROUP = "tcpmonitor.dev"
VERSION = "v1alpha1"
KIND = "TcpMonitor"
PLURAL = "tcpmonitors"
