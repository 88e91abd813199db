"""Fixtures shared by every test module."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from daemon.redaction import redactor

# The process harness: processes, start_emulator, emulator, shared_emulator,
# start_daemon (see tests/support/processes.py); the fleet's fleet_prefix and
# raw_redis (tests/fleet_rig.py).
pytest_plugins = ("tests.support.processes", "tests.fleet_rig")


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with an empty redactor, as a fresh process would."""
    redactor.clear()
    yield
    redactor.clear()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test leaves the root and tokend loggers as it found them.

    `daemon.logs.setup` is global: a command run in-process by one test
    would otherwise set the levels every later test logs at.
    """
    root = logging.getLogger()
    tokend = logging.getLogger("tokend")
    saved = (list(root.handlers), root.level, tokend.level)

    yield

    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    tokend.setLevel(saved[2])
