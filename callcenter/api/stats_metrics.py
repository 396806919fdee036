"""Prometheus series of the statistics: today's figures per queue as gauges, ended calls as counters (edge).

Read from the live board at scrape time (no database query). ``queue=""`` is the overall figure.
Figures that are ``null`` (no calls behind a rate) are left out rather than exported as 0.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from callcenter.stats.definitions import METRICS, MetricKind
from callcenter.stats.service import StatsService

_SHOWN = [m for m in METRICS if m.kind in (MetricKind.COUNTED, MetricKind.LIVE)]


class StatsCollector(Collector):
    """Exports the live board of ``service`` on every scrape."""

    def __init__(self, service: StatsService) -> None:
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snapshot = self._service.snapshot()
        scopes = [("", snapshot.overall), *sorted(snapshot.queues.items())]
        for metric in _SHOWN:
            family = GaugeMetricFamily(
                f"callcenter_stats_{metric.name}",
                f"{metric.summary} ({metric.unit}; today for counted figures; docs/metrics.md)",
                labels=["queue"],
            )
            for queue, values in scopes:
                value = values.get(metric.name)
                if value is not None:
                    family.add_metric([queue], float(value))
            yield family
        ended = CounterMetricFamily(
            "callcenter_calls_ended",
            "Calls ended since this process started, by queue and outcome.",
            labels=["queue", "outcome"],
        )
        for (queue, outcome), count in sorted(self._service.ended_totals.items()):
            ended.add_metric([queue, outcome], count)
        yield ended
