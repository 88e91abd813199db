"""deploy/systemd: the hardened unit and its environment file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import EXIT_USAGE
from daemon.config import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "tokend.service"
ENV_FILE = ROOT / "deploy" / "systemd" / "tokend.env"
OPTION_BY_VARIABLE = {option.variable: option for option in OPTIONS}
SECRET_VARIABLES = {o.variable for o in OPTIONS if o.secret}


def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each section's settings in order; a key may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    """The [Service] settings: every value given for each key."""
    settings: dict[str, list[str]] = {}
    for key, value in unit_sections(UNIT.read_text())["Service"]:
        settings.setdefault(key, []).append(value)
    return settings


def environment(service: dict[str, list[str]]) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in service["Environment"])


def test_the_service_runs_tokend_serve(service: dict[str, list[str]]) -> None:
    """ExecStart runs `tokend serve` from the package's virtual environment."""
    (command,) = service["ExecStart"]

    program, *arguments = command.split()

    assert Path(program).name == "tokend"
    assert arguments == ["serve"]


def test_the_service_is_sandboxed(service: dict[str, list[str]]) -> None:
    """A dynamic user, no privileges, a read-only system, few address families."""
    single = {key: values[-1] for key, values in service.items()}

    families = set(single["RestrictAddressFamilies"].split())

    assert single["DynamicUser"] == "yes"
    assert single["NoNewPrivileges"] == "yes"
    assert single["ProtectSystem"] == "strict"
    assert single["ProtectHome"] == "yes"
    assert single["PrivateTmp"] == "yes"
    assert single["CapabilityBoundingSet"] == ""
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in service["SystemCallFilter"]
    assert single["MemoryMax"]


def test_credentials_come_from_load_credential(
    service: dict[str, list[str]],
) -> None:
    """Each TOKEND_*_FILE names a credential that LoadCredential= provides."""
    loaded = {line.partition(":")[0] for line in service["LoadCredential"]}
    env = environment(service)

    files = {name: value for name, value in env.items() if name.endswith("_FILE")}

    secrets = {name.removesuffix("_FILE") for name in files} & SECRET_VARIABLES
    assert secrets == {
        "TOKEND_CLIENT_ID",
        "TOKEND_CLIENT_SECRET",
        "TOKEND_REFRESH_TOKEN",
    }
    for name in secrets:
        directory, _, credential = files[f"{name}_FILE"].partition("/")
        assert directory == "%d", name
        assert credential in loaded, name
    assert not SECRET_VARIABLES & set(env)


def test_the_state_file_is_in_the_state_directory(
    service: dict[str, list[str]],
) -> None:
    """TOKEND_STATE_FILE lies in the unit's StateDirectory, kept private."""
    (directory,) = service["StateDirectory"]

    state_file = environment(service)["TOKEND_STATE_FILE"]

    assert state_file.startswith(f"%S/{directory}/")
    assert service["StateDirectoryMode"] == ["0700"]


def test_a_bad_setting_is_not_restarted(service: dict[str, list[str]]) -> None:
    """The exit status of a configuration error stops the restart loop."""
    statuses = service["RestartPreventExitStatus"]

    assert statuses == [str(EXIT_USAGE)]
    assert service["Restart"] == ["on-failure"]


def test_the_environment_file_holds_valid_settings_and_no_secret() -> None:
    """Every line of tokend.env is a known, valid, non-secret TOKEND_* setting."""
    lines = [
        line.strip()
        for line in ENV_FILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    settings = dict(line.split("=", 1) for line in lines)

    assert settings
    for name, value in settings.items():
        option = OPTION_BY_VARIABLE[name]
        assert not option.secret, name
        option.parse(value)


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verifies the unit and rates its exposure as low."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    # verify wants ExecStart to exist: point it at an executable that does.
    executable = shutil.which("tokend") or sys.executable
    unit = tmp_path / "tokend.service"
    unit.write_text(UNIT.read_text().replace("/opt/tokend/bin/tokend", executable))

    verify = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert verify.returncode == 0, verify.stderr
    assert verify.stderr == ""
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    assert float(exposure[1]) < 2.0
