{{/*
Names and labels shared by every template of the chart.
*/}}

{{/* The chart's base name. */}}
{{- define "previewd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name for objects: <release>-previewd, or the release name when it already says previewd. */}}
{{- define "previewd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "previewd.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object; `component` (app or worker) is added where it applies. */}}
{{- define "previewd.labels" -}}
app.kubernetes.io/name: {{ include "previewd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "app"). */}}
{{- define "previewd.selector" -}}
app.kubernetes.io/name: {{ include "previewd.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "previewd.appServiceAccount" -}}
{{- printf "%s-app" (include "previewd.fullname" .) -}}
{{- end -}}

{{- define "previewd.workerServiceAccount" -}}
{{- printf "%s-worker" (include "previewd.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the worker binds in each namespace it creates (PREVIEW_ROLE). */}}
{{- define "previewd.previewRole" -}}
{{- printf "%s-preview" (include "previewd.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the worker binds to the app in each namespace it creates (VIEWER_ROLE). */}}
{{- define "previewd.viewerRole" -}}
{{- printf "%s-viewer" (include "previewd.fullname" .) -}}
{{- end -}}

{{/* The Secret the "Register GitHub App" page stores the App's credentials in. */}}
{{- define "previewd.credentialsSecret" -}}
{{- default (printf "%s-github-app" (include "previewd.fullname" .)) .Values.registration.secretName -}}
{{- end -}}

{{/* Where that Secret is mounted, and the file previewd reads (GITHUB_APP_CREDENTIALS). */}}
{{- define "previewd.credentialsDir" -}}/etc/previewd/github-app{{- end -}}
{{- define "previewd.credentialsFile" -}}{{ include "previewd.credentialsDir" . }}/github-app.json{{- end -}}

{{/* The image, tag defaulting to the chart's appVersion. */}}
{{- define "previewd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* PUBLIC_URL: the value given, else https://<ingress host>. */}}
{{- define "previewd.publicUrl" -}}
{{- if .Values.config.PUBLIC_URL -}}
{{- .Values.config.PUBLIC_URL -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* The pod security context both Deployments use (Pod Security Standard "restricted"). */}}
{{- define "previewd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "previewd.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Egress of both processes: cluster DNS, then the TCP ports of networkPolicy.egressPorts anywhere, then networkPolicy.extraEgress. */}}
{{- define "previewd.egress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - { port: 53, protocol: UDP }
    - { port: 53, protocol: TCP }
- ports:
    {{- range .Values.networkPolicy.egressPorts }}
    - { port: {{ . }}, protocol: TCP }
    {{- end }}
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}
