"""Prometheus collectors: counted events and gauges read at scrape time."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families

from daemon.clock import Clock
from daemon.metrics import Metrics
from daemon.supervisor import Status
from daemon.token import AccessToken

WALL_OFFSET = 1_700_000_000.0

IDLE = Status(
    state="starting",
    fingerprint=None,
    expires_in=None,
    servable_for=None,
    refresh_in=None,
    last_error=None,
    consecutive_failures=0,
    last_success=None,
    alive=True,
)


class StatusBox:
    """A status source whose answer a test replaces between scrapes."""

    def __init__(self) -> None:
        self.value = IDLE

    def status(self) -> Status:
        return self.value


def fixed_clock() -> Clock:
    return Clock(monotonic=lambda: 500.0, wall=lambda: 500.0 + WALL_OFFSET)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample in the exposition, keyed by name and sorted labels."""
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_attempts_are_counted_by_outcome() -> None:
    """Grants count by new/same, failures by reason, durations in the histogram."""
    metrics = Metrics(fixed_clock())

    metrics.attempt_finished("new", 0.04)
    metrics.attempt_finished("same", 0.03)
    metrics.attempt_finished("new", 0.05)
    metrics.attempt_finished("transport", 5.0)
    found = samples(metrics)

    assert found[("tokend_grants_total", (("outcome", "new"),))] == 2
    assert found[("tokend_grants_total", (("outcome", "same"),))] == 1
    assert found[("tokend_grant_failures_total", (("reason", "transport"),))] == 1
    duration = "tokend_upstream_request_duration_seconds_count"
    assert found[(duration, (("outcome", "new"),))] == 2
    assert found[(duration, (("outcome", "transport"),))] == 1


def test_token_changes_are_counted() -> None:
    """Each installed token, granted or adopted, adds one change."""
    metrics = Metrics(fixed_clock())

    metrics.token_changed(AccessToken("token-one-value", 1000.0, 14400.0))
    metrics.token_changed(AccessToken("token-two-value", 2000.0, 14400.0))

    assert samples(metrics)[("tokend_token_changes_total", ())] == 2


def test_gauges_follow_the_status_at_each_scrape() -> None:
    """Readiness and failures are read when scraped, never cached."""
    metrics = Metrics(fixed_clock())
    box = StatusBox()
    metrics.watch(box)
    before = samples(metrics)

    box.value = replace(IDLE, servable_for=30.0, consecutive_failures=2)
    after = samples(metrics)

    assert before[("tokend_ready", ())] == 0
    assert after[("tokend_ready", ())] == 1
    assert after[("tokend_consecutive_failures", ())] == 2


def test_expiry_and_next_refresh_are_unix_timestamps() -> None:
    """Expiry and next refresh are exported as wall-clock Unix times."""
    metrics = Metrics(fixed_clock())
    box = StatusBox()
    box.value = replace(IDLE, expires_in=3600.0, refresh_in=60.0)
    metrics.watch(box)

    found = samples(metrics)

    now = 500.0 + WALL_OFFSET
    assert found[("tokend_token_expiry_timestamp_seconds", ())] == now + 3600
    assert found[("tokend_next_refresh_timestamp_seconds", ())] == now + 60


def test_no_expiry_gauge_without_a_token() -> None:
    """While no token is held, the expiry gauge is absent rather than zero."""
    metrics = Metrics(fixed_clock())
    metrics.watch(StatusBox())

    names = {name for name, _ in samples(metrics)}

    assert "tokend_token_expiry_timestamp_seconds" not in names
    assert "tokend_ready" in names


def test_each_daemon_has_its_own_registry() -> None:
    """Two daemons in one process count separately."""
    first = Metrics(fixed_clock())
    second = Metrics(fixed_clock())

    first.token_served(200)

    assert samples(first)[("tokend_token_requests_total", (("status", "200"),))] == 1
    assert samples(second)[("tokend_token_requests_total", (("status", "200"),))] == 0


def test_metrics_never_carry_the_token() -> None:
    """Neither the token nor its fingerprint appears in the exposition."""
    metrics = Metrics(fixed_clock())
    token = AccessToken("a-token-nobody-may-scrape", 1000.0, 14400.0)
    box = StatusBox()
    box.value = replace(IDLE, fingerprint=token.fingerprint, expires_in=10.0)
    metrics.watch(box)

    metrics.token_changed(token)
    text = metrics.exposition().decode()

    assert token.value not in text
    assert token.fingerprint not in text
