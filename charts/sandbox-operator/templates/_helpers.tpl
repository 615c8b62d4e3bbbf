{{- define "sandbox-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sandbox-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sandbox-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sandbox-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "sandbox-operator.labels" -}}
{{ include "sandbox-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sandbox-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sandbox-operator.egressImage" -}}
{{- if .Values.egress.image.repository -}}
{{- printf "%s:%s" .Values.egress.image.repository (default .Chart.AppVersion .Values.egress.image.tag) -}}
{{- else -}}
{{- include "sandbox-operator.image" . -}}
{{- end -}}
{{- end -}}

{{- define "sandbox-operator.serviceAccountName" -}}
{{- include "sandbox-operator.fullname" . -}}
{{- end -}}

{{- define "sandbox-operator.gatewayName" -}}
{{- printf "%s-gateway" (include "sandbox-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Sandbox NetworkPolicies admit the agent's port from pods with these labels (src/backends/pod/network-policy.ts). */ -}}
{{- define "sandbox-operator.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "sandbox-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
sandboxing.dev/gateway: "true"
{{- end -}}

{{- define "sandbox-operator.gatewayKeysSecret" -}}
{{- .Values.gateway.keys.existingSecret | default (printf "%s-keys" (include "sandbox-operator.gatewayName" .)) -}}
{{- end -}}

{{/* The key agent credentials derive from, shared by the controller and the gateway. */}}
{{- define "sandbox-operator.agentKeySecret" -}}
{{- printf "%s-agent-key" (include "sandbox-operator.gatewayName" .) -}}
{{- end -}}
