"""Prometheus collectors for one daemon, on a registry of its own.

Counters and the upstream histogram are fed by the supervisor's events
(`Metrics` is its `Observer`) and by the token endpoint. Gauges that
describe the present (expiry, next refresh, readiness) are read from the
supervisor's status at scrape time, so they can never go stale. Nothing
here carries a token or its fingerprint: labels are outcomes and statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from daemon import __version__
from daemon.clock import Clock
from daemon.supervisor import Status
from daemon.token import AccessToken

# The classic text format: understood by every Prometheus version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Grants take tens of milliseconds when healthy and up to the request
# timeout when not; the buckets span both.
_UPSTREAM_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_GRANTED = ("new", "same")


class StatusSource(Protocol):
    """What the gauges read at scrape time (the supervisor)."""

    def status(self) -> Status: ...


class Metrics:
    """Every tokend metric, registered on `registry`."""

    def __init__(self, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock

        self._grants = Counter(
            "tokend_grants",
            "Grant requests answered with a token, by outcome (new or same token).",
            ["outcome"],
            registry=self.registry,
        )
        self._failures = Counter(
            "tokend_grant_failures",
            "Grant requests that failed, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._upstream = Histogram(
            "tokend_upstream_request_duration_seconds",
            "Time taken by each grant request to the token URL, by outcome.",
            ["outcome"],
            buckets=_UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self._changes = Counter(
            "tokend_token_changes",
            "Times the held token was replaced, whether granted or adopted.",
            registry=self.registry,
        )
        # GET /token is the hot path: a plain count per status, read at
        # scrape time, costs a fraction of a Counter's locked increment.
        self._served = dict.fromkeys((200, 403, 503), 0)
        self.registry.register(_ServedCollector(self._served))

    # The supervisor's Observer protocol.

    def attempt_finished(self, outcome: str, seconds: float) -> None:
        self._upstream.labels(outcome).observe(seconds)
        if outcome in _GRANTED:
            self._grants.labels(outcome).inc()
        else:
            self._failures.labels(outcome).inc()

    def token_changed(self, token: AccessToken) -> None:
        self._changes.inc()

    # The token endpoint.

    def token_served(self, status: int) -> None:
        self._served[status] += 1

    # Gauges of the present, and the exposition.

    def watch(self, source: StatusSource) -> None:
        """Read the state gauges from `source` at every scrape."""
        self.registry.register(_StatusCollector(source, self._clock))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ServedCollector:
    """``tokend_token_requests_total``, from the counts the endpoint keeps."""

    def __init__(self, served: dict[int, int]) -> None:
        self._served = served

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tokend_token_requests",
            "Requests to GET /token, by HTTP status.",
            labels=["status"],
        )
        for status, count in self._served.items():
            family.add_metric([str(status)], float(count))
        yield family


class _StatusCollector:
    """Gauges computed from the supervisor's status when scraped."""

    def __init__(self, source: StatusSource, clock: Clock) -> None:
        self._source = source
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        status = self._source.status()
        now = self._clock.now()

        yield _gauge(
            "tokend_build_info",
            "The running tokend version (always 1).",
            1.0,
            labels={"version": __version__},
        )
        yield _gauge(
            "tokend_ready",
            "1 while a servable token is held, else 0.",
            1.0 if status.ready else 0.0,
        )
        yield _gauge(
            "tokend_refresh_loop_running",
            "1 while the refresh loop is alive, else 0.",
            1.0 if status.alive else 0.0,
        )
        yield _gauge(
            "tokend_consecutive_failures",
            "Failed grant attempts since the last success.",
            float(status.consecutive_failures),
        )
        if status.expires_in is not None:
            yield _gauge(
                "tokend_token_expiry_timestamp_seconds",
                "When the held token expires, as a Unix time.",
                self._clock.to_wall(now + status.expires_in),
            )
        if status.refresh_in is not None:
            yield _gauge(
                "tokend_next_refresh_timestamp_seconds",
                "When the next grant attempt is due, as a Unix time.",
                self._clock.to_wall(now + status.refresh_in),
            )


def _gauge(
    name: str, help_text: str, value: float, labels: dict[str, str] | None = None
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=list(labels or ()))
    family.add_metric(list((labels or {}).values()), value)
    return family
