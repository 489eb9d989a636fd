{{/* Name of the chart, overridable. */}}
{{- define "failoverd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: the release name when it contains the chart name. */}}
{{- define "failoverd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "failoverd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "failoverd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "failoverd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "failoverd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: failoverd
{{- end -}}

{{- define "failoverd.serviceAccountName" -}}
{{- default (include "failoverd.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "failoverd.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Lease leader election runs on (the daemon's Role allows only this name to be read and updated). */}}
{{- define "failoverd.leaseName" -}}failoverd-leader{{- end -}}

{{/* failoverd's configuration: values.config with what the chart owns on top. */}}
{{- define "failoverd.config" -}}
{{- $owned := dict "listen" "0.0.0.0:9097" "dataDir" "/var/lib/failoverd" "store" (dict "type" "kubernetes" "leaseName" (include "failoverd.leaseName" .)) -}}
{{- if .Values.agentCA.existingSecret -}}
{{- $_ := set $owned "agent" (dict "caSeedFile" (printf "/var/run/secrets/failoverd/agent-ca/%s" .Values.agentCA.key)) -}}
{{- end -}}
{{- $cfg := mergeOverwrite (deepCopy .Values.config) $owned -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The port of the standby agents failoverd reaches (config agent.port). */}}
{{- define "failoverd.agentPort" -}}
{{- $agent := default dict .Values.config.agent -}}
{{- default 7443 $agent.port -}}
{{- end -}}

{{/* The webhook URL Alertmanager posts to. */}}
{{- define "failoverd.webhookURL" -}}
{{- printf "http://%s.%s.svc:%d/webhook/alertmanager" (include "failoverd.fullname" .) .Release.Namespace (int .Values.service.port) -}}
{{- end -}}
