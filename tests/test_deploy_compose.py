"""deploy/compose.yaml: valid under the Compose Specification, wired as a pod is."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema, as check-jsonschema ships it."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(
        vendor.joinpath("compose-spec.json").read_text()
    )
    return schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    """The file has no error under the compose-spec schema."""
    errors = [error.message for error in validator.iter_errors(compose)]

    assert errors == []


def test_the_schema_rejects_a_misspelt_service_key(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    """A typo in a service is caught, so the check above means something."""
    broken = {**compose, "services": {"app": {"network_mod": "service:tokend"}}}

    errors = list(validator.iter_errors(broken))

    assert errors


def test_the_app_shares_the_sidecars_network_namespace(
    compose: dict[str, Any],
) -> None:
    """The app joins tokend's namespace and starts once tokend is healthy."""
    app = compose["services"]["app"]

    assert app["network_mode"] == "service:tokend"
    assert app["depends_on"]["tokend"]["condition"] == "service_healthy"
    assert app["environment"]["TOKEND_URL"].startswith("http://127.0.0.1:")
    assert "ports" not in app


def test_the_emulator_stands_in_for_the_provider(compose: dict[str, Any]) -> None:
    """tokend's token URL and the app's XML API both point at the emulator."""
    services = compose["services"]
    command = services["emulator"]["command"]

    listen = command[command.index("--listen") + 1]

    assert command[0] == "emulator"
    assert listen == "0.0.0.0:8438"
    token_url = services["tokend"]["environment"]["TOKEND_TOKEN_URL"]
    assert token_url == "http://emulator:8438/oauth/token"
    api_url = services["app"]["environment"]["ACOUSTIC_API_URL"]
    assert api_url == "http://emulator:8438/XMLAPI"


def test_credentials_arrive_as_secret_files(compose: dict[str, Any]) -> None:
    """Each TOKEND_*_FILE names a mounted Compose secret whose file exists."""
    tokend = compose["services"]["tokend"]
    mounted = {f"/run/secrets/{name}": name for name in tokend["secrets"]}

    files = {
        name: path
        for name, path in tokend["environment"].items()
        if name.endswith("_FILE")
    }

    assert len(files) == 3
    for path in files.values():
        secret = compose["secrets"][mounted[path]]
        assert (COMPOSE.parent / secret["file"]).is_file()
    assert not {"TOKEND_CLIENT_SECRET", "TOKEND_REFRESH_TOKEN"} & set(
        tokend["environment"]
    )


def test_only_the_health_listener_reaches_the_host(compose: dict[str, Any]) -> None:
    """tokend publishes port 8440 on the host's loopback and nothing else."""
    services = compose["services"]

    published = {name: s.get("ports", []) for name, s in services.items()}

    assert published == {
        "emulator": [],
        "tokend": ["127.0.0.1:8440:8440"],
        "app": [],
    }


def test_every_service_is_locked_down(compose: dict[str, Any]) -> None:
    """Read-only root, no capabilities, no privilege gain, for every service."""
    for name, service in compose["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_the_state_lives_in_a_named_volume(compose: dict[str, Any]) -> None:
    """tokend's state directory is a declared volume, writable under read_only."""
    mounts = compose["services"]["tokend"]["volumes"]

    volume, _, target = mounts[0].partition(":")

    assert target == "/var/lib/tokend"
    assert volume in compose["volumes"]
