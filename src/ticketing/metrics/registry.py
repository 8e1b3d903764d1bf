"""The process's metrics: requests by route template and status, latency, creates, open
streams, pending outbox events, database connections in use.

Each server process keeps its own figures (a scrape sees the process that answered it); run
one process per port, or scrape each worker, to see them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import Scope

CREATE_ROUTE = "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}"


class Metrics:
    """The collectors of one application instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ticketing_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ticketing_http_request_duration_seconds",
            "Time to answer a request (for event streams: how long they stayed open).",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
            registry=self.registry,
        )
        self.creates = Counter(
            "ticketing_tickets_created", "Tickets created.", registry=self.registry
        )
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
        self.metrics = metrics
        # The request counter and latency histogram of each (method, route, status), looked
        # up once: routes are templates, so there are as many as routes times statuses.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _series_of(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
        return series

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        if scope["type"] != "http":
            return
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        requests, latency = self._series_of(scope["method"], route, status)
        requests.inc()
        latency.observe(seconds)
        if route == CREATE_ROUTE and status == 200:
            self.metrics.creates.inc()
