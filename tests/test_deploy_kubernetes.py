"""The Kubernetes manifests: valid against the API schemas, and locked down."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from daemon.config import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("base", "overlays/fleet")

# Native sidecars are on by default from 1.29; check the newest schemas too.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

# The variables that name a file holding a secret (TOKEND_CLIENT_ID_FILE...).
SECRET_FILES = {option.variable + "_FILE" for option in OPTIONS if option.secret}

UID = 10001
HEALTH_PORT = 8440

Document = dict[str, Any]


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(directory: Path) -> list[Document]:
    """What `kubectl apply -k` applies, for the features these files use.

    Resources are read (a directory recursively), `images` set the tag, and
    each patch is an RFC 6902 operation list applied to the named target.
    """
    kustomization = load_yaml(directory / "kustomization.yaml")[0]
    unknown = set(kustomization) - {
        "apiVersion",
        "kind",
        "resources",
        "images",
        "patches",
    }
    assert not unknown, f"render() does not know {unknown}"

    documents: list[Document] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        documents += render(path) if path.is_dir() else load_yaml(path)

    for patch in kustomization.get("patches", []):
        target = patch["target"]
        operations = load_yaml(directory / patch["path"])[0]
        matches = [
            doc
            for doc in documents
            if doc["kind"] == target["kind"]
            and doc["metadata"]["name"] == target["name"]
        ]
        assert len(matches) == 1, f"patch {patch['path']} matches {len(matches)}"
        patched = jsonpatch.apply_patch(matches[0], operations)
        documents[documents.index(matches[0])] = patched

    for image in kustomization.get("images", []):
        for container in all_containers(documents):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image['name']}:{image['newTag']}"
    return documents


def pod_specs(documents: list[Document]) -> list[Document]:
    return [
        doc["spec"]["template"]["spec"]
        for doc in documents
        if doc["kind"] == "Deployment"
    ]


def all_containers(documents: list[Document]) -> list[Document]:
    return [
        container
        for spec in pod_specs(documents)
        for container in spec.get("initContainers", []) + spec["containers"]
    ]


def app_pod(documents: list[Document]) -> Document:
    (deployment,) = [
        doc
        for doc in documents
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "app"
    ]
    return deployment


def sidecar(documents: list[Document]) -> Document:
    (tokend,) = [
        c
        for c in app_pod(documents)["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "tokend"
    ]
    return tokend


def env_of(container: Document) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def quantity(text: str) -> float:
    """A Kubernetes quantity (64Mi, 500m, 1.5) as a number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    assert match, f"{text!r} is not a quantity"
    scale = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    scale |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(match[1]) * scale[match[2]]


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Document]:
    """The documents of one kustomization, as they would be applied."""
    return render(KUBERNETES / request.param)


def every_manifest() -> list[object]:
    """Each Kubernetes document in deploy/kubernetes, named by file and kind."""
    params = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in load_yaml(path):
            if (
                isinstance(doc, dict)
                and "kind" in doc
                and doc["kind"] != "Kustomization"
            ):
                name = f"{path.relative_to(KUBERNETES)}:{doc['kind']}"
                params.append(pytest.param(doc, id=name))
    return params


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("document", every_manifest())
def test_each_manifest_matches_the_kubernetes_schema(
    document: Document, version: str
) -> None:
    """Every document in the tree passes strict schema validation."""
    validated = kubernetes_validate.validate(document, version, strict=True)

    assert validated == version.rsplit(".", 1)[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_kustomization_matches_the_kubernetes_schema(
    rendered: list[Document], version: str
) -> None:
    """The documents a kustomization applies, patched, pass strict validation."""
    for document in rendered:
        kubernetes_validate.validate(document, version, strict=True)

    assert {doc["kind"] for doc in rendered} >= {"Deployment"}


def test_schema_validation_rejects_a_misspelt_field() -> None:
    """The strict check catches a typo, so a pass above means something."""
    document = copy.deepcopy(app_pod(render(KUBERNETES / "base")))
    document["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = (
        "Always"
    )

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, VERSIONS[0], strict=True)


def test_tokend_runs_as_a_native_sidecar(rendered: list[Document]) -> None:
    """tokend is an init container with restartPolicy Always beside the app."""
    spec = app_pod(rendered)["spec"]["template"]["spec"]

    tokend = sidecar(rendered)

    assert tokend["restartPolicy"] == "Always"
    assert spec["containers"], "the application container is missing"
    assert "tokend" not in {c["name"] for c in spec["containers"]}


def test_probes_use_the_health_listener(rendered: list[Document]) -> None:
    """Startup and readiness ask /readyz, liveness /healthz, on port 8440."""
    tokend = sidecar(rendered)
    ports = {p["name"]: p["containerPort"] for p in tokend["ports"]}
    env = env_of(tokend)

    probes = {
        kind: (tokend[kind]["httpGet"]["path"], ports[tokend[kind]["httpGet"]["port"]])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }

    assert probes == {
        "startupProbe": ("/readyz", HEALTH_PORT),
        "livenessProbe": ("/healthz", HEALTH_PORT),
        "readinessProbe": ("/readyz", HEALTH_PORT),
    }
    assert env["TOKEND_HEALTH_LISTEN"] == f"0.0.0.0:{HEALTH_PORT}"
    assert env["TOKEND_LISTEN"].startswith("127.0.0.1:")


def test_the_startup_probe_outlasts_the_longest_backoff(
    rendered: list[Document],
) -> None:
    """The kubelet waits longer than one 5 minute backoff before a restart."""
    probe = sidecar(rendered)["startupProbe"]

    patience = probe["periodSeconds"] * probe["failureThreshold"]

    assert patience > 5 * 60


def test_no_secret_reaches_a_container_through_the_environment(
    rendered: list[Document],
) -> None:
    """No env entry or envFrom takes a value from a Secret."""
    containers = all_containers(rendered)

    from_secrets = [
        (c["name"], item["name"])
        for c in containers
        for item in c.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    ] + [(c["name"], "envFrom") for c in containers if c.get("envFrom")]

    assert from_secrets == []
    assert "TOKEND_REDIS_URL" not in env_of(sidecar(rendered))


def test_no_volume_is_mounted_with_subpath(rendered: list[Document]) -> None:
    """subPath mounts never see a Secret's update, so none is used."""
    mounts = [m for c in all_containers(rendered) for m in c.get("volumeMounts", [])]

    with_subpath = [m["name"] for m in mounts if "subPath" in m or "subPathExpr" in m]

    assert mounts
    assert with_subpath == []


def test_credential_files_come_from_mounted_secrets(
    rendered: list[Document],
) -> None:
    """Each TOKEND_*_FILE names a file inside a read-only Secret volume mount."""
    spec = app_pod(rendered)["spec"]["template"]["spec"]
    secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
    tokend = sidecar(rendered)
    secret_mounts = [
        m["mountPath"]
        for m in tokend["volumeMounts"]
        if m["name"] in secret_volumes and m.get("readOnly")
    ]

    files = {k: v for k, v in env_of(tokend).items() if k in SECRET_FILES}

    assert set(files) >= {
        "TOKEND_CLIENT_ID_FILE",
        "TOKEND_CLIENT_SECRET_FILE",
        "TOKEND_REFRESH_TOKEN_FILE",
    }
    for name, path in files.items():
        assert any(path.startswith(mount + "/") for mount in secret_mounts), name


def test_the_state_file_lives_in_an_empty_dir(rendered: list[Document]) -> None:
    """TOKEND_STATE_FILE is inside a mounted emptyDir volume."""
    spec = app_pod(rendered)["spec"]["template"]["spec"]
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    tokend = sidecar(rendered)

    state_file = Path(env_of(tokend)["TOKEND_STATE_FILE"])

    mounts = {m["mountPath"]: m["name"] for m in tokend["volumeMounts"]}
    assert mounts[str(state_file.parent)] in empty_dirs


def test_every_container_is_locked_down(rendered: list[Document]) -> None:
    """Non-root, read-only root, no privilege escalation, no capabilities, seccomp."""
    for spec in pod_specs(rendered):
        pod = spec.get("securityContext", {})
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = {**pod, **container.get("securityContext", {})}

            assert context.get("runAsNonRoot") is True, container["name"]
            assert context.get("readOnlyRootFilesystem") is True, container["name"]
            assert context.get("allowPrivilegeEscalation") is False, container["name"]
            assert context.get("capabilities", {}).get("drop") == ["ALL"]
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault"


def test_tokend_runs_as_the_images_user(rendered: list[Document]) -> None:
    """The sidecar's UID and GID are the fixed 10001 of the image."""
    pod = app_pod(rendered)["spec"]["template"]["spec"]["securityContext"]

    context = {**pod, **sidecar(rendered)["securityContext"]}

    assert (context["runAsUser"], context["runAsGroup"]) == (UID, UID)
    assert f"USER {UID}:{UID}" in (ROOT / "Dockerfile").read_text()


def test_every_container_has_sized_resources(rendered: list[Document]) -> None:
    """Each container requests memory and CPU, and caps memory at or above it."""
    for container in all_containers(rendered):
        resources = container["resources"]

        requested = quantity(resources["requests"]["memory"])
        limit = quantity(resources["limits"]["memory"])

        assert quantity(resources["requests"]["cpu"]) > 0, container["name"]
        assert limit >= requested > 0, container["name"]


def test_the_sidecar_image_is_the_tagged_tokend_image(
    rendered: list[Document],
) -> None:
    """kustomize's images entry tags the sidecar with the package's version."""
    version = re.search(
        r'__version__ = "(.+)"', (ROOT / "daemon" / "__init__.py").read_text()
    )

    image = sidecar(rendered)["image"]

    assert version
    assert image == f"tokend:{version[1]}"


def test_the_fleet_shares_one_token_through_redis() -> None:
    """The fleet overlay runs replicas with the Redis URL from a Secret file."""
    documents = render(KUBERNETES / "overlays/fleet")
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    redis = by_kind[("Deployment", "tokend-redis")]
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    app_labels = app_pod(documents)["spec"]["template"]["metadata"]["labels"]

    env = env_of(sidecar(documents))

    assert app_pod(documents)["spec"]["replicas"] > 1
    assert env["TOKEND_REDIS_URL_FILE"].startswith("/run/secrets/")
    service = by_kind[("Service", "tokend-redis")]
    assert service["spec"]["selector"].items() <= redis_labels.items()
    policy = by_kind[("NetworkPolicy", "tokend-redis")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_labels.items()
    allowed = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed.items() <= app_labels.items()


def test_the_base_holds_no_redis() -> None:
    """A single pod keeps its token to itself: no Redis setting in the base."""
    documents = render(KUBERNETES / "base")

    env = env_of(sidecar(documents))

    assert not any(name.startswith("TOKEND_REDIS") for name in env)
    assert app_pod(documents)["spec"]["replicas"] == 1
