"""The fleet's part in /readyz and /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from daemon.stores.fleet_health import FleetCollector, FleetStatus, Role, fleet_document


class Fixed:
    """A fleet view that always reports one status."""

    def __init__(self, status: FleetStatus) -> None:
        self.status = status

    def fleet_status(self) -> FleetStatus:
        return self.status


def test_readiness_shows_role_generation_and_counts() -> None:
    """The /readyz fleet object carries the role by name and the counters."""
    status = FleetStatus(Role.STANDALONE, 1796318000123, 4, 1)

    document = fleet_document(status)

    assert document == {
        "role": "standalone",
        "generation": 1796318000123,
        "redis_errors": 4,
        "fenced_writes": 1,
    }


def test_metrics_mark_the_current_role_and_count_errors() -> None:
    """One role gauge is 1, the others 0; errors and fenced writes are counters."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(Fixed(FleetStatus(Role.HOLDER, 7, 2, 0))))

    text = generate_latest(registry).decode()

    assert 'tokend_fleet_role{role="holder"} 1.0' in text
    assert 'tokend_fleet_role{role="follower"} 0.0' in text
    assert 'tokend_fleet_role{role="standalone"} 0.0' in text
    assert "tokend_fleet_generation 7.0" in text
    assert "tokend_fleet_redis_errors_total 2.0" in text
    assert "tokend_fleet_fenced_writes_total 0.0" in text
