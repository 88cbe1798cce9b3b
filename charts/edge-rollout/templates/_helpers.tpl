{{/*
Names, labels and images shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "edge-rollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart> (just <release> when it already contains the chart name), or fullnameOverride. */}}
{{- define "edge-rollout.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "edge-rollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select a component's pods: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "edge-rollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-rollout.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Standard labels and commonLabels: pass (dict "ctx" $ "component" "operator"); component may be empty. */}}
{{- define "edge-rollout.labels" -}}
{{ include "edge-rollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: edge-rollout
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "edge-rollout.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* <fullname>-<component>: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "edge-rollout.componentName" -}}
{{- printf "%s-%s" (include "edge-rollout.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "edge-rollout.operator.serviceAccountName" -}}
{{- $sa := .Values.operator.serviceAccount }}
{{- if $sa.create }}
{{- default (include "edge-rollout.componentName" (dict "ctx" . "component" "operator")) $sa.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" $sa.name }}
{{- end }}
{{- end }}

{{/* The agent's ServiceAccount name (the admission policy matches it). */}}
{{- define "edge-rollout.agent.serviceAccountName" -}}
{{- $sa := .Values.agent.serviceAccount }}
{{- if $sa.create }}
{{- default (include "edge-rollout.componentName" (dict "ctx" . "component" "agent")) $sa.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" $sa.name }}
{{- end }}
{{- end }}

{{/* An image reference: pass (dict "ctx" $ "image" .Values.operator.image). Digest wins over tag. */}}
{{- define "edge-rollout.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The store keys' volume source, or nothing; fails when both sources of the one key are set
or two trusted keys share an id. */}}
{{- define "edge-rollout.storeKeyVolume" -}}
{{- $store := .Values.store }}
{{- if and $store.publicKey $store.existingSecret }}
{{- fail "set either store.publicKey or store.existingSecret, not both" }}
{{- end }}
{{- $ids := list }}
{{- range $store.trustedKeys }}
{{- if has .id $ids }}
{{- fail (printf "store.trustedKeys: the id %q is used twice; give each key its own id (e.g. release-2026, release-2027)" .id) }}
{{- end }}
{{- $ids = append $ids .id }}
{{- end }}
{{- $configMap := include "edge-rollout.componentName" (dict "ctx" . "component" "store-key") }}
{{- if and $store.existingSecret $store.trustedKeys }}
projected:
  sources:
    - secret:
        name: {{ $store.existingSecret }}
        items:
          - key: {{ $store.existingSecretKey }}
            path: public-key.pem
    - configMap:
        name: {{ $configMap }}
{{- else if $store.existingSecret }}
secret:
  secretName: {{ $store.existingSecret }}
  items:
    - key: {{ $store.existingSecretKey }}
      path: public-key.pem
{{- else if or $store.publicKey $store.trustedKeys }}
configMap:
  name: {{ $configMap }}
{{- end }}
{{- end }}

{{/* The agent's nodeSelector: agent.nodeSelector, or edge: "true" when it is empty (a default
in values.yaml would be merged with the user's selector instead of replaced by it). */}}
{{- define "edge-rollout.agent.nodeSelector" -}}
{{- toYaml (default (dict "edge" "true") .Values.agent.nodeSelector) }}
{{- end }}

{{/* The name of the ClusterKopfPeering: fixed, the operator's Kopf settings use it. */}}
{{- define "edge-rollout.peeringName" -}}
edge-rollout
{{- end }}
