{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "clodo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, suffixed with the chart name unless it already contains it. */}}
{{- define "clodo-operator.fullname" -}}
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

{{- define "clodo-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods. Never change them: Deployment selectors are immutable. */}}
{{- define "clodo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clodo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "clodo-operator.labels" -}}
helm.sh/chart: {{ include "clodo-operator.chart" . }}
{{ include "clodo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clodo
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "clodo-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clodo-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "clodo-operator.leaseName" -}}
{{- default (include "clodo-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "clodo-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The operator's permissions on the namespaced objects it reconciles, reads and writes. Used by the
ClusterRole (all namespaces) or by one Role per watched namespace. Keep this list least-privilege:
ci/chart-check.sh compares the rendered rules with the exact expected set.
*/}}
{{- define "clodo-operator.rules" -}}
- apiGroups: ["clodo.dev"]
  resources: ["cloudflareservices"]
  # create/delete: a Portfolio creates and deletes its child CloudflareServices.
  verbs: ["get", "list", "watch", "patch", "update", "create", "delete"]
- apiGroups: ["clodo.dev"]
  resources: ["customers", "portfolios"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["clodo.dev"]
  resources: ["cloudflareservices/status", "customers/status", "portfolios/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["clodo.dev"]
  resources: ["cloudflareservices/finalizers", "customers/finalizers", "portfolios/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  # create/patch: the Secrets holding generated Worker secrets, owned by their CloudflareService.
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Render one CRD body from files/crds/<stem>.yaml with the chart's metadata added. */}}
{{- define "clodo-operator.crd" -}}
{{- $root := index . 0 }}
{{- $stem := index . 1 }}
{{- $path := printf "files/crds/%s.yaml" $stem }}
{{- $body := $root.Files.Get $path }}
{{- if not $body }}
{{- fail (printf "%s is missing: copy it from crds/ (see README)" $path) }}
{{- end }}
{{- $header := regexFind "^apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: [a-z0-9.-]+\nspec:\n" $body }}
{{- if not $header }}
{{- fail (printf "%s must start with apiVersion, kind, metadata with only a name, then spec (as `clodo-operator crds` prints)" $path) }}
{{- end }}
{{- $name := regexFind "[a-z0-9.-]+\nspec:\n$" $header | trimSuffix "\nspec:\n" }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ $name }}
  annotations:
    helm.sh/resource-policy: keep
    {{- with $root.Values.crds.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "clodo-operator.labels" $root | nindent 4 }}
spec:
{{ trimPrefix $header $body }}
{{- end }}
