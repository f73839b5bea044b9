{{/* Chart name, possibly overridden. */}}
{{- define "tcpmonitor-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already contains the chart name,
else release-chart; at most 63 characters (a DNS label).
*/}}
{{- define "tcpmonitor-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The metrics Service's name, which is also Prometheus's job label for the operator. */}}
{{- define "tcpmonitor-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "tcpmonitor-operator.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "tcpmonitor-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tcpmonitor-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tcpmonitor-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tcpmonitor-operator.labels" -}}
helm.sh/chart: {{ include "tcpmonitor-operator.chart" . }}
{{ include "tcpmonitor-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tcpmonitor-operator
{{- end }}

{{- define "tcpmonitor-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tcpmonitor-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tcpmonitor-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs, and no more; tests/e2e/test_helm_install.py removes each one in
turn and checks that the operator then fails visibly.
*/}}
{{- define "tcpmonitor-operator.rules" -}}
# Watch TcpMonitors (kopf lists, then watches).
- apiGroups: ["tcpmonitor.dev"]
  resources: ["tcpmonitors"]
  verbs: ["list", "watch"]
# Write results, through the status subresource only.
- apiGroups: ["tcpmonitor.dev"]
  resources: ["tcpmonitors/status"]
  verbs: ["patch"]
# Transition Events (TargetUp, TargetDown, ...).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
# spec.sendFrom.secretKeyRef, spec.tls.caSecretRef, spec.tls.clientCertSecretRef; read by name.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# spec.tls.caConfigMapRef; read by name.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}
