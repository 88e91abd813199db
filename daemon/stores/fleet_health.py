"""Fleet state for /readyz and /metrics: role, generation, Redis errors."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from daemon.sources import TokenSource


class Role(enum.StrEnum):
    """A replica's part in the fleet."""

    HOLDER = "holder"
    FOLLOWER = "follower"
    STANDALONE = "standalone"


@dataclass(frozen=True)
class FleetStatus:
    """Fleet state for health output and metrics; never a token."""

    role: Role
    generation: int | None
    redis_errors: int
    fenced_writes: int


@runtime_checkable
class FleetView(Protocol):
    """What health output reads from a fleet store."""

    def fleet_status(self) -> FleetStatus: ...


def fleet_of(source: TokenSource) -> FleetView | None:
    """The fleet store behind the supervisor, or None outside fleet mode."""
    return source if isinstance(source, FleetView) else None


def fleet_document(status: FleetStatus) -> dict[str, Any]:
    """The ``fleet`` object of /readyz; readiness itself never depends on it."""
    return {
        "role": status.role.value,
        "generation": status.generation,
        "redis_errors": status.redis_errors,
        "fenced_writes": status.fenced_writes,
    }


class FleetCollector:
    """Prometheus families read from the fleet store at each scrape."""

    def __init__(self, fleet: FleetView) -> None:
        self._fleet = fleet

    def collect(self) -> Iterator[Metric]:
        status = self._fleet.fleet_status()

        role = GaugeMetricFamily(
            "tokend_fleet_role",
            "1 for this replica's part in the fleet (holder, follower or "
            "standalone while Redis is unreachable), 0 for the others.",
            labels=["role"],
        )
        for each in Role:
            role.add_metric([each.value], 1.0 if each is status.role else 0.0)
        yield role

        if status.generation is not None:
            yield GaugeMetricFamily(
                "tokend_fleet_generation",
                "The lease generation of the shared token last seen or held.",
                value=float(status.generation),
            )
        yield CounterMetricFamily(
            "tokend_fleet_redis_errors",
            "Redis commands that failed (refused, timed out, rejected).",
            value=float(status.redis_errors),
        )
        yield CounterMetricFamily(
            "tokend_fleet_fenced_writes",
            "Writes refused because a later lease holder had taken over.",
            value=float(status.fenced_writes),
        )
