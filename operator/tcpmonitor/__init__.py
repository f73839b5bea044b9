"""tcpmonitor-operator: Checkly-style TCP monitors as a native Kubernetes resource.

Each layer imports only the layers below it (import-linter checks it):
api <- policy <- probe <- reporting <- telemetry <- scheduling <- locations
<- kube | standalone <- cli.
``api`` is the models and the CRDs; ``policy`` decides which targets a namespace may
probe; ``probe`` runs one probe; ``reporting`` turns results into
status, conditions and Events (pure); ``telemetry`` is metrics and health; ``scheduling`` holds
the monitors of one process and runs them on time; ``locations`` shares them among runners and
aggregates; ``kube`` is the kopf and client glue; ``standalone`` reads files; ``cli`` is on top.
"""

__version__ = "0.1.0"
GROUP = "tcpmonitor.dev"
VERSION = "v1alpha1"
KIND = "TcpMonitor"
PLURAL = "tcpmonitors"
