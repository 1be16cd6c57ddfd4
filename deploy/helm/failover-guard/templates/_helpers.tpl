{{- define "fg.name" -}}failover-guard{{- end -}}
{{- define "fg.fullname" -}}
{{- if contains "failover-guard" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-failover-guard" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "fg.labels" -}}
app.kubernetes.io/name: failover-guard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "fg.selector" -}}
app.kubernetes.io/name: failover-guard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "fg.tlsSecret" -}}
{{- if eq .Values.certificates.mode "secret" -}}{{ required "certificates.secret.name is required with mode secret" .Values.certificates.secret.name }}{{- else -}}{{ include "fg.fullname" . }}-tls{{- end -}}
{{- end -}}
{{- define "fg.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
    {{- range .Values.webhooks.excludeNamespaces }}
    - {{ . }}
    {{- end }}
    - {{ .Release.Namespace }}
  {{- with .Values.webhooks.namespaceSelectorExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
