"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daemon.redaction import redactor

# The process harness: processes, start_emulator, emulator, shared_emulator,
# start_daemon (see tests/support/processes.py).
pytest_plugins = ("tests.support.processes",)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with an empty redactor, as a fresh process would."""
    redactor.clear()
    yield
    redactor.clear()
