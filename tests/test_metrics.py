"""GET /metrics: Prometheus text with requests by route template, latency, creates, open
streams, pending outbox events and database connections in use."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.sse_client import SseReader
from tests.support import Server, Tenant
from tests.ticket_api import QUERY


def scrape(server: Server, tenant: Tenant) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = tenant.client.get(f"{server.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_creates_and_open_streams(
    server: Server, tenant: Tenant
) -> None:
    create_route = "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}"
    get_route = "/api/v2/ticketing/ticket/{objectId}"
    before = scrape(server, tenant)
    ids = [tenant.create().json()["objectId"] for _ in range(3)]
    assert tenant.create(team="nobody").status_code == 404
    for object_id in ids:
        assert tenant.get(f"/ticket/{object_id}").status_code == 200
    reader = SseReader(
        f"{server.base_url}/api/v2/ticketing/ticket/sse/list/updates",
        tenant.headers(accept="text/event-stream"),
        QUERY,
    )
    try:
        reader.wait_for(lambda events: len(events) >= 1)
        after = scrape(server, tenant)
    finally:
        reader.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "ticketing_http_requests_total"
    assert delta(requests, method="POST", route=create_route, status="200") == 3
    assert delta(requests, method="POST", route=create_route, status="404") == 1
    assert delta(requests, method="GET", route=get_route, status="200") == 3
    assert delta("ticketing_tickets_created_total") == 3
    latency = "ticketing_http_request_duration_seconds_count"
    assert delta(latency, method="GET", route=get_route) == 3
    assert value(after, "ticketing_sse_streams_open") >= 1
    assert value(after, "ticketing_db_pool_connections_in_use") >= 0
    assert ("ticketing_outbox_pending_events", ()) in after
    # Raw paths never become labels.
    assert not any(re.search(r"CTC-\d", dict(labels).get("route", "")) for _, labels in after)


def test_request_figures_render_as_the_client_library_renders_a_histogram() -> None:
    # The same observations in the library's own histogram and in RequestFigures: the scrape
    # text of both parses to the same samples (le labels, cumulative buckets, count, sum).
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from ticketing.metrics.registry import LATENCY_BUCKETS, RequestFigures

    observations = [0.001, 0.005, 0.0051, 0.3, 1, 1.0000001, 42, 600, 601, 10_000]
    library = CollectorRegistry()
    histogram = Histogram(
        "ticketing_http_request_duration_seconds",
        "latency",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=library,
    )
    ours = CollectorRegistry()
    figures = RequestFigures()
    ours.register(figures)
    for seconds in observations:
        histogram.labels("GET", "/x").observe(seconds)
        figures.count("GET", "/x", "200", seconds)
    figures.creates += 2

    def samples(
        registry: CollectorRegistry,
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        found = {}
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found

    theirs = samples(library)
    mine = samples(ours)
    assert {key: value for key, value in mine.items() if key in theirs} == theirs
    assert (
        value(
            mine,
            "ticketing_http_request_duration_seconds_bucket",
            method="GET",
            route="/x",
            le="0.005",
        )
        == 2
    )
    assert value(
        mine, "ticketing_http_request_duration_seconds_bucket", method="GET", route="/x", le="+Inf"
    ) == len(observations)
    assert value(
        mine, "ticketing_http_requests_total", method="GET", route="/x", status="200"
    ) == len(observations)
    assert value(mine, "ticketing_tickets_created_total") == 2


def test_head_metrics_answers_as_get_without_a_body(server: Server, http: httpx.Client) -> None:
    url = f"{server.base_url}/metrics"
    get = http.get(url)
    head = http.head(url)

    assert head.status_code == 200, head.text
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-type"].startswith("text/plain")
    assert head.content == b""
    # The length a GET's body would have (the figures move between two scrapes, so not the
    # same number), never the 0 of an empty body; or no Content-Length at all.
    assert int(head.headers.get("content-length", "1")) > 0
    # No body bytes followed the head on the connection: the next answer on it parses.
    again = http.get(url)
    assert again.status_code == 200
    assert "ticketing_http_requests_total" in again.text
