#!/usr/bin/env bash
# Install the deploy validation tools into .local/bin (idempotent; the Makefile's install target calls it):
#   kustomize  — builds the overlays of deploy/k8s (Go module sigs.k8s.io/kustomize/kustomize/v5);
#   promtool   — checks and unit-tests the Prometheus alert rules (Go module github.com/prometheus/prometheus).
# Both come through the Go module proxy and are compiled here; each takes about a minute the first time.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$REPO/.local/bin"
KUSTOMIZE_VERSION=v5.8.1
PROMETHEUS_VERSION=v0.316.0   # the Go module version of Prometheus 3.x's promtool
mkdir -p "$BIN"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install_tools.sh: Go is needed to build kustomize and promtool (apt-get install golang-go, or the Go toolchain)" >&2
  exit 1
fi
export GOBIN="$BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

if ! stamp_ok kustomize "$KUSTOMIZE_VERSION"; then
  echo "installing kustomize $KUSTOMIZE_VERSION into .local/bin" >&2
  go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  echo "$KUSTOMIZE_VERSION" > "$BIN/.kustomize.version"
fi

if ! stamp_ok promtool "$PROMETHEUS_VERSION"; then
  echo "installing promtool ($PROMETHEUS_VERSION) into .local/bin" >&2
  # remove_all_sd leaves out the cloud service-discovery plugins: we check static configs and rules only.
  go install -tags remove_all_sd "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  echo "$PROMETHEUS_VERSION" > "$BIN/.promtool.version"
fi
