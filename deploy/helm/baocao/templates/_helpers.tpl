{{- define "baocao.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "baocao.labels" -}}
app.kubernetes.io/name: baocao
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: baocao
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "ingest") */}}
{{- define "baocao.selector" -}}
app.kubernetes.io/name: baocao
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "baocao.image" -}}
{{- if contains "@" .Values.image.repository -}}
{{ .Values.image.repository }}
{{- else -}}
{{ .Values.image.repository }}:{{ required "image.tag: pin the image to a version" .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "baocao.mongoHosts" -}}
{{- $full := include "baocao.fullname" . -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.mongodb.replicas) -}}
{{- $hosts = append $hosts (printf "%s-mongodb-%d.%s-mongodb.%s.svc:27017" $full $i $full $.Release.Namespace) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Environment every baocao container gets: Kafka over TLS as `principal`, MongoDB as baocao.
     (dict "root" $ "principal" "ingest") */}}
{{- define "baocao.env" -}}
{{- $v := .root.Values -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ printf "%s-kafka-bootstrap:9093" $v.kafka.cluster | quote }}
- name: BAOCAO_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: BAOCAO_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: BAOCAO_KAFKA_SSL_CAFILE
  value: /etc/baocao/kafka-ca/ca.crt
- name: BAOCAO_KAFKA_REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | quote }}
- name: BAOCAO_KAFKA_MIN_INSYNC_REPLICAS
  value: {{ $v.kafka.minInsyncReplicas | quote }}
- name: BAOCAO_KAFKA_USERNAME
  value: {{ .principal | quote }}
- name: BAOCAO_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      # made by Strimzi's user operator for the KafkaUser of that name
      name: {{ .principal | quote }}
      key: password
- name: BAOCAO_MONGO_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.mongodb | quote }}
      key: baocao-password
- name: MONGODB_URI
  value: {{ printf "mongodb://baocao:$(BAOCAO_MONGO_PASSWORD)@%s/?replicaSet=%s&authSource=admin" (include "baocao.mongoHosts" .root) $v.mongodb.replicaSet | quote }}
- name: MONGODB_DATABASE
  value: {{ $v.mongodb.database | quote }}
- name: MONGODB_READ_PREFERENCE
  value: {{ $v.mongodb.readPreference | quote }}
- name: BAOCAO_AUTH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.auth | quote }}
      key: secret
- name: BAOCAO_LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: BAOCAO_PROVINCES
  value: {{ $v.provinces | quote }}
- name: BAOCAO_REPORTS_TOPIC
  value: {{ $v.kafka.topics.reports | quote }}
- name: BAOCAO_DEAD_LETTER_TOPIC
  value: {{ $v.kafka.topics.deadLetter | quote }}
- name: BAOCAO_TOTALS_TOPIC
  value: {{ $v.kafka.topics.totals | quote }}
{{- end -}}

{{- define "baocao.volumes" -}}
- name: tmp
  emptyDir: {}
- name: kafka-ca
  secret:
    secretName: {{ printf "%s-cluster-ca-cert" .Values.kafka.cluster }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end -}}

{{- define "baocao.mounts" -}}
- name: tmp
  mountPath: /tmp
- name: kafka-ca
  mountPath: /etc/baocao/kafka-ca
  readOnly: true
{{- end -}}
