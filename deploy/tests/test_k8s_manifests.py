"""deploy/k8s/ against the Kubernetes schemas (offline, kubernetes-validate ships them) and
against deploy/compose.yml and deploy/nginx.conf, which stay the one source of the service
list, commands, environment, secrets and routes: a service added to compose, a command or a
route changed there, fails here until deploy/k8s/ follows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1]
K8S = DEPLOY / "k8s"
PARTS = ("common", "data", "migrations", "station")
# The oldest Kubernetes these manifests are for (every API used is GA there) and the newest
# whose schemas the package ships.
VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())

# A Deployment that a compose file may not have yet, and how it is cut from the compose
# service that supervises it: compose's audio-control once ran a playout worker beside
# every API replica (their leases kept all but one waiting). Here the worker runs once, on
# its own. Where compose has the service itself, it is compared like any other.
SPLIT_FROM = {
    "audio-control-playout": (
        "audio-control",
        ["audio-control", "playout"],
        {"PORT"},  # the API's port: the worker serves no HTTP
    )
}
# Environment here and not (or not yet) in compose, per Deployment, each for a reason the
# manifest states.
K8S_ONLY_ENV = {
    "audio-control": {"AUDIO_CONTROL_RUN_PLAYOUT"},  # the worker is audio-control-playout
    "audio-control-playout": {"AUDIO_CONTROL_AIRED_DIR"},  # on its volume
    "ws-broadcaster": {"WS_BROADCASTER_PORT"},  # its own variable, beside compose's PORT
    "pollers": {"POLLERS_HEALTH_HOST", "POLLERS_HEALTH_PORT"},  # its probes' server
    "dashboard": {"EAS_GATEWAY_ALLOWED_HOSTS"},  # "*": the Ingress checks Host; probes' Host
}
# Mounts here and not (or not yet) in compose.
K8S_ONLY_MOUNTS = {"audio-control-playout": {"/data"}}  # the aired WAV folder's volume
# Compose values the Kubernetes side corrects (test_the_dashboard_hosts_no_service).
CORRECTED = {("dashboard", "EAS_GATEWAY_DISABLE")}
# Compose literals that are the site's own in a cluster (the ConfigMap's, not compose's).
SITE_SPECIFIC = {"EAS_TRUSTED_PROXIES"}
# One per station by design (replicas 1, Recreate, no autoscaler).
SINGLE = {"eas-monitor", "audio-control-playout"}
# Scaled by an autoscaler: nothing of theirs is tied to one pod.
STATELESS = {"alerts-api", "station-api", "audio-control", "ws-broadcaster", "dashboard"}
# compose's secret names are the file names under /run/secrets; here each is a key of the
# eas-station-keys Secret (eas-token keygen's file names).
SECRET_KEYS = {
    "station_public_key": "signing.pub.pem",
    "station_signing_key": "signing.pem",
    "station_chain_key": "chain.pem",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _kustomization(part: str) -> dict[str, Any]:
    loaded = yaml.safe_load((K8S / part / "kustomization.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _resources(part: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for entry in _kustomization(part)["resources"]:
        path = (K8S / part / entry).resolve()
        if path.is_dir():
            yield from _resources(str(path.relative_to(K8S)))
        else:
            for doc in _docs(path):
                yield path, doc


def _all() -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for part in PARTS:
        for _, doc in _resources(part):
            seen[(doc["kind"], doc["metadata"]["name"])] = doc
    return list(seen.values())


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _all() if d["kind"] == kind}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    container: dict[str, Any] = containers[0]
    return container


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _example_secrets() -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d["stringData"]) for d in _docs(K8S / "secrets.example.yaml")
    }


def _config_keys() -> dict[str, set[str]]:
    return {d["metadata"]["name"]: set(d["data"]) for d in _all() if d["kind"] == "ConfigMap"}


# ---- the Kubernetes schemas -----------------------------------------------------------------


def _every_manifest() -> list[Any]:
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _docs(path):
            where = f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"
            out.append(pytest.param(doc, id=where))
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", _every_manifest())
def test_manifest_matches_the_kubernetes_schema(version: str, doc: dict[str, Any]) -> None:
    # strict: a field the API does not know (a typo, a field at the wrong level) fails too.
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_strict_schema_check_rejects_a_misplaced_field() -> None:
    deployment = dict(_by_kind("Deployment")["alerts-api"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_each_kustomization_lists_exactly_the_files_beside_it() -> None:
    for part in PARTS:
        listed = {e for e in _kustomization(part)["resources"] if not e.startswith("..")}
        present = {p.name for p in (K8S / part).glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, part
        assert part == "common" or "../common" in _kustomization(part)["resources"]
    # The example Secrets are made by hand, never applied from the repository.
    for part in PARTS:
        assert "secrets.example.yaml" not in str(_kustomization(part)["resources"])


def test_the_image_is_set_in_one_way_everywhere_it_is_used() -> None:
    images = {part: _kustomization(part).get("images") for part in ("migrations", "station")}
    assert images["migrations"] == images["station"]
    for workload in [*_by_kind("Deployment").values(), *_by_kind("Job").values()]:
        image = _container(workload)["image"]
        assert image == "eas-station", workload["metadata"]["name"]


# ---- compose is the one source --------------------------------------------------------------


def _python_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _compose()["services"].items() if "build" in s}


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _mounted_secrets(workload: dict[str, Any]) -> set[str]:
    paths = set()
    for volume in workload["spec"]["template"]["spec"].get("volumes", []):
        if "secret" in volume:
            assert volume["secret"]["secretName"] == "eas-station-keys"
            for item in volume["secret"]["items"]:
                assert SECRET_KEYS[item["path"]] == item["key"], item
                paths.add(item["path"])
    return paths


def _source(name: str) -> tuple[str, list[str] | None, set[str]]:
    """The compose service a workload is made from, the command it runs if not compose's,
    and compose variables it leaves out."""
    if name == "eas-migrations":
        return "migrations", None, set()
    if name in SPLIT_FROM and name not in _compose()["services"]:
        return SPLIT_FROM[name]
    return name, None, set()


def test_every_compose_service_has_its_kubernetes_counterpart() -> None:
    compose = _compose()["services"]
    deployments, jobs = _by_kind("Deployment"), _by_kind("Job")
    stateful = _by_kind("StatefulSet")
    for name, service in compose.items():
        if name == "migrations":
            assert "eas-migrations" in jobs
        elif name == "proxy":
            # nginx is the Ingress here (test_ingress_routes_what_nginx_conf_routes).
            assert any("./nginx.conf:" in v for v in service["volumes"])
        elif "build" in service:
            assert name in deployments, f"compose service {name} has no Deployment"
        else:
            assert name in stateful, f"compose service {name} has no StatefulSet"
            assert _container(stateful[name])["image"] == service["image"]
    for name in deployments:
        assert _source(name)[0] in compose, f"Deployment {name} is not in compose"


@pytest.mark.parametrize(
    "name",
    [*sorted(_by_kind("Deployment")), "eas-migrations"],
)
def test_workload_runs_what_compose_runs(name: str) -> None:
    workload = {**_by_kind("Deployment"), **_by_kind("Job")}[name]
    source, command, left_out = _source(name)
    service = _python_services()[source]
    container = _container(workload)
    assert container["command"] == (command or service["command"])

    compose_env, env = _compose_env(service), _env(container)
    compose_env = {k: v for k, v in compose_env.items() if k not in left_out}
    assert set(env) == set(compose_env) | K8S_ONLY_ENV.get(name, set())
    for key, value in compose_env.items():
        if (name, key) in CORRECTED:
            continue
        if "${" in value or key in SITE_SPECIFIC:
            assert "valueFrom" in env[key], f"{name} {key}: the site's value, not a literal"
        elif key in ("EAS_REDIS_URL", "EAS_DATABASE_URL"):
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "eas-station-secrets"
        else:
            assert env[key].get("value") == value, f"{name} {key}"
    assert _mounted_secrets(workload) == set(service.get("secrets", []))

    # compose's volumes ("source:path[:ro]") are mounted at the same paths, read-only alike.
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    wanted = {}
    for volume in service.get("volumes", []):
        _, path, *mode = volume.split(":")
        wanted[path] = mode == ["ro"]
    assert {p: mounts.get(p) for p in wanted} == wanted, name
    assert set(mounts) - {"/run/secrets"} <= set(wanted) | K8S_ONLY_MOUNTS.get(name, set())


def test_env_from_secrets_and_config_names_keys_that_exist() -> None:
    secrets, config = _example_secrets(), _config_keys()
    workloads = [*_by_kind("Deployment").values(), *_by_kind("Job").values()]
    workloads += _by_kind("StatefulSet").values()
    for workload in workloads:
        for var in _container(workload).get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]]
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in config[ref["configMapKeyRef"]["name"]]
    assert set(SECRET_KEYS.values()) == secrets["eas-station-keys"]


def test_redis_runs_what_compose_runs() -> None:
    service = _compose()["services"]["redis"]
    container = _container(_by_kind("StatefulSet")["redis"])
    # compose writes $$ for a literal $; Kubernetes leaves $X alone (it expands only $(X)).
    assert container["command"][:2] == service["command"][:2]
    assert container["command"][2].split() == service["command"][2].replace("$$", "$").split()


def test_replicas_single_and_scaled() -> None:
    compose, deployments = _python_services(), _by_kind("Deployment")
    hpas, pdbs = _by_kind("HorizontalPodAutoscaler"), _by_kind("PodDisruptionBudget")
    assert set(hpas) == STATELESS
    assert set(pdbs) == STATELESS | {"eas-monitor"}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        source = compose[_source(name)[0]]
        if name in SINGLE:
            assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", name
            assert source.get("deploy", {}).get("replicas", 1) == 1 or name in SPLIT_FROM
        else:
            assert spec["strategy"]["type"] == "RollingUpdate", name
            assert spec["replicas"] >= source.get("deploy", {}).get("replicas", 1), name
        if name in hpas:
            hpa = hpas[name]["spec"]
            assert hpa["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            }
            assert hpa["minReplicas"] == spec["replicas"] < hpa["maxReplicas"]
            assert pdbs[name]["spec"]["minAvailable"] < hpa["minReplicas"]
        if name in pdbs:
            assert pdbs[name]["spec"]["selector"] == spec["selector"]


# ---- probes, resources, services ------------------------------------------------------------


def _listen_port(container: dict[str, Any]) -> int:
    command, env = container["command"], _env(container)
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    for key in ("POLLERS_HEALTH_PORT", "PORT"):
        if key in env:
            return int(env[key]["value"])
    raise AssertionError(f"no port for {container['name']}")


@pytest.mark.parametrize("name", sorted(set(_by_kind("Deployment")) - {"audio-control-playout"}))
def test_deployment_is_probed_on_healthz_and_readyz(name: str) -> None:
    container = _container(_by_kind("Deployment")[name])
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": _listen_port(container)}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_playout_worker_serves_no_http_and_says_why() -> None:
    # `audio-control playout` opens no port (its liveness is its bus heartbeat); a probe on
    # a port nothing listens on would restart it forever.
    container = _container(_by_kind("Deployment")["audio-control-playout"])
    assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(container)
    assert "No HTTP probes" in (K8S / "station" / "audio-control-playout.yaml").read_text()


def test_every_container_has_requests_and_limits_and_runs_unprivileged() -> None:
    workloads = [*_by_kind("Deployment").values(), *_by_kind("Job").values()]
    for workload in [*workloads, *_by_kind("StatefulSet").values()]:
        container = _container(workload)
        name = workload["metadata"]["name"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert {"cpu", "memory"} <= set(resources["limits"]), name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
        pod = workload["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
    for name in SINGLE:
        resources = _container(_by_kind("Deployment")[name])["resources"]
        assert resources["requests"] == resources["limits"], f"{name}: Guaranteed QoS"


def test_the_image_user_is_the_one_the_pods_run_as() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert "--uid 10001" in dockerfile


def test_services_select_deployments_and_name_their_ports() -> None:
    deployments = _by_kind("Deployment")
    for name, service in _by_kind("Service").items():
        if name in ("redis", "postgres"):
            continue
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert port["port"] == _listen_port(_container(deployments[name]))
        assert port["targetPort"] == "http"


# ---- the single origin ----------------------------------------------------------------------


def _block(conf: str, start: int) -> str:
    """The text of the block opened just before ``start``, nested blocks (``if``) included."""
    depth = 1
    for i in range(start, len(conf)):
        depth += {"{": 1, "}": -1}.get(conf[i], 0)
        if depth == 0:
            return conf[start:i]
    raise AssertionError("nginx.conf: unclosed block")


def _nginx_routes() -> dict[tuple[str, str], str]:
    """(path, Prefix|Exact) -> compose service, from deploy/nginx.conf."""
    conf = (DEPLOY / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{\s*server\s+([\w-]+):\d+;", conf))
    routes: dict[tuple[str, str], str] = {}
    for m in re.finditer(r"location\s+(=\s+|~\s+)?(\S+)\s*\{", conf):
        modifier, path, body = (m.group(1) or "").strip(), m.group(2), _block(conf, m.end())
        proxied = re.search(r"proxy_pass http://(\w+);", body)
        if proxied is None:
            continue
        target = upstreams[proxied.group(1)]
        if modifier == "~":
            alternatives = re.fullmatch(r"\^(/[\w/-]*/)\(([\w|-]+)\)", path)
            assert alternatives, f"nginx.conf regex location {path} not understood"
            for alt in alternatives.group(2).split("|"):
                routes[(alternatives.group(1) + alt, "Prefix")] = target
        else:
            routes[(path, "Exact" if modifier == "=" else "Prefix")] = target
    return routes


def test_ingress_routes_what_nginx_conf_routes() -> None:
    routes: dict[tuple[str, str], str] = {}
    hosts = set()
    for ingress in _by_kind("Ingress").values():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            hosts.add(rule["host"])
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                assert backend["port"] == {"name": "http"}
                routes[(p["path"], p["pathType"])] = backend["name"]
    nginx = _nginx_routes()
    assert len(nginx) >= 10
    assert routes == nginx
    # One origin: every route on one host (a request for another Host reaches nothing).
    assert len(hosts) == 1
    services = set(_by_kind("Service"))
    assert set(routes.values()) <= services


def test_the_websocket_route_has_long_timeouts_and_only_it() -> None:
    ingresses = _by_kind("Ingress")
    ws, api = ingresses["eas-station-ws"], ingresses["eas-station"]
    paths = [p["path"] for r in ws["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == ["/ws"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(ws["metadata"]["annotations"][f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
        assert f"nginx.ingress.kubernetes.io/{key}" not in api["metadata"]["annotations"]
    body = re.search(r"client_max_body_size\s+(\w+);", (DEPLOY / "nginx.conf").read_text())
    assert body is not None
    size = api["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size == body.group(1)


def test_routed_pods_are_the_ones_the_network_policy_admits() -> None:
    deployments = _by_kind("Deployment")
    routed = {name for (_, _), name in _nginx_routes().items()}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert (labels.get("eas-station/ingress") == "true") == (name in routed), name
    policy = _by_kind("NetworkPolicy")["from-ingress-controller"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"eas-station/ingress": "true"}}


# ---- kustomize ------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["data", "migrations", "station"])
def test_each_part_builds_with_kustomize(part: str) -> None:
    # kubectl's built-in kustomize, where the machine has kubectl (it is not a project
    # dependency: the schema tests above need nothing but Python).
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S / part)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d is not None]
    expected = {(d["kind"], d["metadata"]["name"]) for _, d in _resources(part)}
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == expected
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "eas-station"
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "eas-station"
        if doc["kind"] in ("Deployment", "Job"):
            assert _container(doc)["image"] == "eas-station:latest"


# ---- the dashboard --------------------------------------------------------------------------


def _disabled(env_value: str) -> set[str]:
    return {n.strip() for n in env_value.split(",") if n.strip()}


def _installed_services() -> set[str]:
    # The gateway's own registry; servicekit.manifest.installed() checks each entry point's
    # name is its manifest's, so the names are read without importing every service.
    from importlib.metadata import entry_points

    from servicekit.manifest import ENTRY_POINT_GROUP

    names = {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"alerts-api", "audio-control"} <= names
    return names


def test_the_dashboard_hosts_no_service() -> None:
    # The gateway hosts every installed service it is not told to disable; the dashboard's
    # pods must host none (a hosted audio-control brings a playout worker with it).
    env = _env(_container(_by_kind("Deployment")["dashboard"]))
    assert _disabled(env["EAS_GATEWAY_DISABLE"]["value"]) == _installed_services()
    assert env["EAS_GATEWAY_ALLOWED_HOSTS"]["value"] == "*"


def test_routed_scaled_pods_drain_before_they_stop() -> None:
    # Without a pause before SIGTERM the ingress controller still sends requests to a pod
    # that has stopped listening; a POST is not retried on another replica.
    for name in STATELESS:
        deployment = _by_kind("Deployment")[name]
        container = _container(deployment)
        pause = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pause[0] == "sleep", name
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= int(pause[1]) + 10, name
