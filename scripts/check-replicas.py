"""Checks what the rendered replicas layout (deploy/kubernetes/replicas/) promises, beyond
what the API schemas check: secrets come from Secrets, the admin port stays inside the
cluster, the probes, the disruption budget and the spread over nodes are there.

    python3 check-replicas.py RENDERED.yaml SECRETS.example.yaml

Run by scripts/check-manifests.sh with kubernetes-validate's Python (it has PyYAML). Prints
one line per broken promise and exits with 1, or prints nothing and exits with 0.
"""

import re
import sys
import tomllib

import yaml

ADMIN_PORT = 9090
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def load(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def one(objects, kind):
    found = [o for o in objects if o.get("kind") == kind]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def selects(selector, labels):
    """Whether a matchLabels selector selects these labels (and is not empty)."""
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def is_admin_port(port, container_ports):
    """Whether a Service targetPort or NetworkPolicy port names the admin listener."""
    if port in (ADMIN_PORT, str(ADMIN_PORT)):
        return True
    return container_ports.get(port) == ADMIN_PORT


def main(rendered_path, secrets_path):
    objects = load(rendered_path)
    example_secrets = {s["metadata"]["name"]: s for s in load(secrets_path)}

    deployment = one(objects, "Deployment")
    spec = deployment.get("spec", {})
    check(spec.get("replicas", 1) >= 2, "the Deployment has fewer than 2 replicas")
    pod = spec.get("template", {})
    pod_labels = pod.get("metadata", {}).get("labels", {})
    pod_spec = pod.get("spec", {})
    containers = pod_spec.get("containers", [])
    check(len(containers) == 1, "the pod has not exactly one container (launcher mode)")
    container = containers[0] if containers else {}
    container_ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(container_ports.get("http") == 8080, "the container has no port http (8080)")
    check(container_ports.get("admin") == ADMIN_PORT, f"the container has no port admin ({ADMIN_PORT})")

    # The Redis URL: from a Secret, never a literal value, never in a ConfigMap.
    env = {e["name"]: e for e in container.get("env", [])}
    url = env.get("IDLEGATE_STORE__URL", {})
    ref = url.get("valueFrom", {}).get("secretKeyRef")
    if check(ref and "value" not in url, "IDLEGATE_STORE__URL is not set from a secretKeyRef"):
        check(not ref.get("optional"), "the store URL's Secret is optional")
    for e in container.get("env", []):
        check(not re.match(r"rediss?://", str(e.get("value", ""))),
              f"the variable {e['name']} holds a Redis URL in the manifest")

    # idlegate.toml, from the generated ConfigMap.
    configmap = one(objects, "ConfigMap")
    config = tomllib.loads(configmap.get("data", {}).get("idlegate.toml", ""))

    def values(table):
        for value in table.values():
            if isinstance(value, dict):
                yield from values(value)
            elif isinstance(value, list):
                yield from value
            else:
                yield value

    check(not any(re.match(r"rediss?://", str(v)) for v in values(config)),
          "idlegate.toml holds a Redis URL")
    store = config.get("store", {})
    check("store" in config, "idlegate.toml has no [store]")
    check("url" not in store, "idlegate.toml sets store.url (it belongs in the Secret)")
    check(store.get("on_unavailable", "refuse") in ("refuse", "local"),
          "store.on_unavailable is neither refuse nor local")

    # The ConfigMap and the files idlegate reads from Secrets are mounted.
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"], {})
              for m in container.get("volumeMounts", [])}
    config_volume = mounts.get("/etc/idlegate", {}).get("configMap", {})
    check(config_volume.get("name") == configmap.get("metadata", {}).get("name"),
          "the ConfigMap made from idlegate.toml is not mounted at /etc/idlegate")
    secret_refs = {}  # Secret name -> keys the pod needs from it
    if ref:
        secret_refs.setdefault(ref.get("name"), set()).add(ref.get("key"))

    def secret_file(key, path):
        if not check(isinstance(path, str), f"idlegate.toml does not set {key}"):
            return
        directory, _, name = path.rpartition("/")
        secret = mounts.get(directory, {}).get("secret")
        if check(secret is not None, f"{key} ({path}) is not in a mounted Secret"):
            check(not secret.get("optional"), f"the Secret holding {key} is optional")
            secret_refs.setdefault(secret.get("secretName"), set()).add(name)

    secret_file("login.cookie_keys_file", config.get("login", {}).get("cookie_keys_file"))
    admin = config.get("admin", {})
    check(admin.get("listen", "").endswith(f":{ADMIN_PORT}"),
          f"admin.listen is not on port {ADMIN_PORT}")
    secret_file("admin.tokens_file", admin.get("tokens_file"))

    # Every Secret the pod reads is in secrets.example.yaml, with the keys it reads.
    for name, keys in secret_refs.items():
        example = example_secrets.get(name)
        if check(example is not None, f"secrets.example.yaml lacks the Secret {name}"):
            have = set(example.get("stringData", {})) | set(example.get("data", {}))
            check(keys <= have, f"secrets.example.yaml's {name} lacks {sorted(keys - have)}")

    # Probes on idlegate's health endpoints.
    for probe, path in (("startupProbe", "/_idlegate/healthz"),
                        ("livenessProbe", "/_idlegate/healthz"),
                        ("readinessProbe", "/_idlegate/readyz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        check(got == path, f"the {probe} asks {got}, not {path}")

    # Replicas on different nodes.
    spread = [c for c in pod_spec.get("topologySpreadConstraints", [])
              if c.get("topologyKey") == "kubernetes.io/hostname"
              and selects(c.get("labelSelector"), pod_labels)]
    anti = (pod_spec.get("affinity", {}).get("podAntiAffinity", {})
            .get("requiredDuringSchedulingIgnoredDuringExecution", []))
    check(spread or any(t.get("topologyKey") == "kubernetes.io/hostname" for t in anti),
          "nothing spreads the replicas over nodes")

    budget = one(objects, "PodDisruptionBudget")
    check(selects(budget.get("spec", {}).get("selector"), pod_labels),
          "the PodDisruptionBudget does not select the pods")

    # The admin port: only ClusterIP Services, none of them behind an Ingress.
    services = [o for o in objects if o.get("kind") == "Service"]
    admin_services = set()
    for service in services:
        name = service["metadata"]["name"]
        for port in service.get("spec", {}).get("ports", []):
            if is_admin_port(port.get("targetPort", port.get("port")), container_ports):
                admin_services.add(name)
                check(service["spec"].get("type", "ClusterIP") == "ClusterIP",
                      f"the Service {name} exposes the admin port outside the cluster")
    check(admin_services, "no Service serves the admin port inside the cluster")
    for ingress in (o for o in objects if o.get("kind") == "Ingress"):
        for rule in ingress.get("spec", {}).get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {}).get("name")
                check(backend not in admin_services,
                      f"the Ingress sends {path.get('path')} to the admin Service {backend}")
    check(any(o.get("kind") == "Ingress" for o in objects), "there is no Ingress")

    # The NetworkPolicy lets the admin port in only from named peers.
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"
                and selects(o.get("spec", {}).get("podSelector"), pod_labels)]
    if check(policies, "no NetworkPolicy selects the pods"):
        for policy in policies:
            check("Ingress" in policy["spec"].get("policyTypes", ["Ingress"]),
                  "the NetworkPolicy does not limit incoming traffic")
            for rule in policy["spec"].get("ingress", []):
                ports = rule.get("ports") or []
                opens_admin = not ports or any(
                    is_admin_port(p.get("port"), container_ports) for p in ports)
                if opens_admin:
                    peers = rule.get("from") or []
                    check(peers and not any("ipBlock" in p for p in peers),
                          "a NetworkPolicy rule opens the admin port to any address")

    for problem in problems:
        print(f"{rendered_path}: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
