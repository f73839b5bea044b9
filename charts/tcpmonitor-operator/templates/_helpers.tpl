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

{{/* mode: all-in-one. The operator's ServiceAccount. */}}
{{- define "tcpmonitor-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tcpmonitor-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* mode: distributed. The controller's ServiceAccount. */}}
{{- define "tcpmonitor-operator.controllerServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller" (include "tcpmonitor-operator.fullname" .)) .Values.serviceAccount.controllerName }}
{{- else }}
{{- required "serviceAccount.controllerName is required when serviceAccount.create is false" .Values.serviceAccount.controllerName }}
{{- end }}
{{- end }}

{{/*
mode: distributed and runners. The ServiceAccount of a location's runners, one per location
(<runnerName>-<location>): the API server knows a runner's location from its identity alone,
which the runner admission policy (runner-admission-policy.yaml) relies on. The argument is
(list $ location).
*/}}
{{- define "tcpmonitor-operator.runnerServiceAccountName" -}}
{{- $root := index . 0 }}
{{- $base := "" }}
{{- if $root.Values.serviceAccount.create }}
{{- $base = default (printf "%s-runner" (include "tcpmonitor-operator.fullname" $root)) $root.Values.serviceAccount.runnerName }}
{{- else }}
{{- $base = required "serviceAccount.runnerName is required when serviceAccount.create is false" $root.Values.serviceAccount.runnerName }}
{{- end }}
{{- printf "%s-%s" $base (index . 1) }}
{{- end }}

{{/* The ServiceAccount of a remote location's runners; the argument is (list $ name). */}}
{{- define "tcpmonitor-operator.remoteServiceAccountName" -}}
{{- printf "%s-remote-%s" (include "tcpmonitor-operator.fullname" (index . 0)) (index . 1) }}
{{- end }}

{{- define "tcpmonitor-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}


{{/*
RBAC: the rules each process needs, and no more. tests/e2e/helm/test_permissions.py runs each
process with exactly these rules and then without each verb in turn, and checks that it then
fails visibly.
*/}}

{{/* mode: all-in-one, and the controller: watch, write top-level status, post Events, resolve
references. */}}
{{- define "tcpmonitor-operator.rules.operator" -}}
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

{{/* The runners: the same, but no Events (the controller posts them). */}}
{{- define "tcpmonitor-operator.rules.runner" -}}
# Watch TcpMonitors (kopf lists, then watches).
- apiGroups: ["tcpmonitor.dev"]
  resources: ["tcpmonitors"]
  verbs: ["list", "watch"]
# The location's entry of status.locations (server-side apply), through the status
# subresource only.
- apiGroups: ["tcpmonitor.dev"]
  resources: ["tcpmonitors/status"]
  verbs: ["patch"]
# spec.sendFrom.secretKeyRef, spec.tls.caSecretRef, spec.tls.clientCertSecretRef; read by name.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# spec.tls.caConfigMapRef; read by name.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}

{{/* The controller's Leases, in the release namespace. */}}
{{- define "tcpmonitor-operator.rules.controllerLeases" -}}
# The runners' Leases (label selector tcpmonitor.dev/role=runner): which locations have a live
# runner.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list"]
# Leader election: the Lease tcpmonitor-controller, created by the first controller (a create
# cannot be limited to a name) ...
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
# ... then read, renewed or taken over, and deleted on shutdown so that a standby takes over at
# once.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: ["tcpmonitor-controller"]
  verbs: ["get", "update", "delete"]
{{- end }}

{{/* The runners' Leases, in the release namespace. A runner's Lease is named after its pod
(tcpmonitor-runner-<pod name>), which is not known in advance, so no resourceNames. */}}
{{- define "tcpmonitor-operator.rules.runnerLeases" -}}
# Its own Lease: created, renewed, deleted on shutdown so that the others take over at once.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update", "delete"]
# The Leases of its location (label selector): the runners it shares the monitors with.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list"]
{{- end }}

{{/*
One Deployment of the release. The argument is a dict:
  root              the chart's top-level context
  name              the Deployment's name
  component         operator | controller | runner
  location          the runner's location, or ""
  selector          extra selector labels (beyond name and instance)
  replicas, strategy
  serviceAccountName, automountToken
  args              the command line
  readinessPath     /readyz, or /healthz for pods that may stand by
  resources, nodeSelector, tolerations, affinity
  kubeconfigSecret  mode: runners, the Secret with the remote API server's kubeconfig
Every pod gets the same restricted security context, probes, /tmp and downward-API identity.
*/}}
{{- define "tcpmonitor-operator.deployment" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "tcpmonitor-operator.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with .location }}
    tcpmonitor.dev/location: {{ . }}
    {{- end }}
spec:
  replicas: {{ .replicas }}
  strategy:
    {{- toYaml .strategy | nindent 4 }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "tcpmonitor-operator.selectorLabels" $root | nindent 6 }}
      {{- with .selector }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- include "tcpmonitor-operator.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
        {{- with .location }}
        tcpmonitor.dev/location: {{ . }}
        {{- end }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccountName }}
      automountServiceAccountToken: {{ .automountToken }}
      enableServiceLinks: false
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      # SIGTERM stops every process in well under 10 s (Leases are released on the way out).
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          image: {{ include "tcpmonitor-operator.image" $root | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            # The process's identity: its Lease holder name and the Events' reportingInstance.
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          ports:
            - name: http-metrics
              containerPort: {{ $values.metrics.port }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: http-metrics
            {{- toYaml $values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: {{ .readinessPath }}
              port: http-metrics
            {{- toYaml $values.readinessProbe | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            # The only writable path: a client certificate (or a kubeconfig's inline CA) is
            # written to a temporary file while it is loaded.
            - name: tmp
              mountPath: /tmp
            {{- if .kubeconfigSecret }}
            - name: kubeconfig
              mountPath: /etc/tcpmonitor
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $values.tmpSizeLimit }}
        {{- with .kubeconfigSecret }}
        - name: kubeconfig
          secret:
            secretName: {{ .name }}
            items:
              - key: {{ .key }}
                path: kubeconfig
        {{- end }}
      {{- with .nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

