"""The process's metrics: requests by route template and status, latency, creates, open
streams, pending outbox events, database connections in use.

Each server process keeps its own figures (a scrape sees the process that answered it); run
one process per port, or scrape each worker, to see them all.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from starlette.types import Scope

CREATE_ROUTE = "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600)
# The buckets' `le` labels as the client library writes them (1 -> "1.0").
_LE = (*(repr(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")


class _Latency:
    """One histogram series: how many answers fell in each bucket (not cumulative; the last
    is +Inf), their sum, and when the series began."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.created = time.time()


class RequestFigures:
    """Requests, their latency and creates, kept as plain numbers and turned into Prometheus
    families at each scrape.

    Every request counts once here, so the figures are kept the cheapest way: the client
    library's counters and histograms take a lock for each count, and a histogram walks its
    buckets in Python, about 1% of a create's CPU. Requests are counted on the event loop's
    thread, which is also the one a scrape runs on.
    """

    def __init__(self) -> None:
        # (method, route, status) -> [count, created]
        self.requests: dict[tuple[str, str, str], list[float]] = {}
        # (method, route) -> its latency histogram
        self.latency: dict[tuple[str, str], _Latency] = {}
        self.creates = 0
        self.creates_since = time.time()

    def count(self, method: str, route: str, status: str, seconds: float) -> None:
        series = self.requests.get((method, route, status))
        if series is None:
            series = self.requests[(method, route, status)] = [0, time.time()]
        series[0] += 1
        latency = self.latency.get((method, route))
        if latency is None:
            latency = self.latency[(method, route)] = _Latency()
        latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "ticketing_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for labels, (count, created) in list(self.requests.items()):
            requests.add_metric(labels, count, created=created)
        yield requests
        name = "ticketing_http_request_duration_seconds"
        latency = HistogramMetricFamily(
            name,
            "Time to answer a request (for event streams: how long they stayed open).",
            labels=["method", "route"],
        )
        for (method, route), series in list(self.latency.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(_LE, series.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            latency.add_metric([method, route], buckets, series.total)
            latency.samples.append(
                Sample(f"{name}_created", {"method": method, "route": route}, series.created)
            )
        yield latency
        creates = CounterMetricFamily("ticketing_tickets_created", "Tickets created.")
        creates.add_metric([], self.creates, created=self.creates_since)
        yield creates


class Metrics:
    """The collectors of one application instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.figures = RequestFigures()
        self.registry.register(self.figures)
        self.streams = Gauge(
            "ticketing_sse_streams_open", "Event streams open now.", registry=self.registry
        )
        self.webhooks = Counter(
            "ticketing_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, gave_up).",
            ["outcome"],
            registry=self.registry,
        )
        self.pending_events = Gauge(
            "ticketing_outbox_pending_events",
            "Committed events waiting for their position (older transactions still running).",
            registry=self.registry,
        )
        self.reads = Counter(
            "ticketing_db_reads",
            "Read-only requests by the database that served them (replica, primary), when "
            "replicas are configured.",
            ["source"],
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "ticketing_db_pool_connections_in_use",
            "Database connections of this process's pool handed out now.",
            registry=self.registry,
        )

    def watch(
        self,
        *,
        streams: Callable[[], float],
        pending_events: Callable[[], float],
        pool_in_use: Callable[[], float],
    ) -> None:
        """Reads the gauges from the running process at each scrape."""
        self.streams.set_function(streams)
        self.pending_events.set_function(pending_events)
        self.pool_in_use.set_function(pool_in_use)


class RequestMetrics:
    """Counts and times every request by its route template (never by its raw path): the
    request-id middleware's `on_done` hook (ticketing.kit.requests)."""

    def __init__(self, metrics: Metrics) -> None:
        self.figures = metrics.figures
        # Status codes as label text, made once each.
        self._status = {code: str(code) for code in range(100, 600)}

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        if scope["type"] != "http":
            return
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        figures = self.figures
        figures.count(scope["method"], route, self._status.get(status) or str(status), seconds)
        if status == 200 and route == CREATE_ROUTE:
            figures.creates += 1
