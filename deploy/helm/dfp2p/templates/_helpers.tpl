{{/* Names and labels of the dfp2p chart. */}}
{{- define "dfp2p.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dfp2p.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "dfp2p.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dfp2p.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "dfp2p.secretName" -}}
{{- .Values.cluster.existingSecret | default (printf "%s-cluster" (include "dfp2p.fullname" .)) -}}
{{- end -}}

{{/* caFromSecret: "true" when the tracker reads the CA from the Secret. */}}
{{- define "dfp2p.caFromSecret" -}}
{{- if or .Values.cluster.caKey (and .Values.cluster.existingSecret .Values.cluster.existingSecretHasCA) -}}true{{- end -}}
{{- end -}}
