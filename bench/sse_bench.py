"""SSE fan-out: many open list-update streams on one server process while tickets are created
at a steady rate; reports commit-to-event latency and the server's peak RSS.

The latency of a ticket on a stream is measured from when its create response arrived
(the create committed just before) to when the stream delivered its `created` event; the
figure from when the create request was sent is printed too (an upper bound).

Usage: python bench/sse_bench.py [--streams 1000] [--rate 200] [--seconds 30] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEV_ISSUER,
    RESULTS,
    fresh_database,
    new_tenant_id,
    percentile,
    start_server,
    tenant_config,
    ticketing,
)

QUERY = "type=agent&module=ticketing"
BODY = {
    "source": "api",
    "summary": "Hardware request - new laptop",
    "ticketBody": {
        "offerId": "23629",
        "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop",
        "711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week",
    },
    "attachments": {},
    "ticketRelation": None,
}


async def _stream(
    port: int, headers: dict[str, str], seen: dict[str, float], opened: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"GET /api/v2/ticketing/ticket/sse/list/updates?{QUERY} HTTP/1.1\r\n"
        f"host: 127.0.0.1\r\naccept: text/event-stream\r\n{lines}\r\n".encode()
    )
    await writer.drain()
    event = b""
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"event: "):
            event = line[7:].strip()
            if event == b"connected":
                opened.set()
        elif line.startswith(b"data: ") and event == b"created":
            object_id = orjson.loads(line[6:])["objectId"]
            now = time.time()
            seen[object_id] = min(seen.get(object_id, now), now)
            seen[f"{object_id}#n"] = seen.get(f"{object_id}#n", 0) + 1


def _client(
    port: int, headers: dict[str, str], count: int, seconds: float, out: Any, ready: Any
) -> None:
    """A process holding `count` streams; reports when each got each ticket."""
    per_stream: list[dict[str, float]] = [{} for _ in range(count)]

    async def main() -> None:
        events = [asyncio.Event() for _ in range(count)]
        tasks = [
            asyncio.create_task(_stream(port, headers, seen, ev))
            for seen, ev in zip(per_stream, events, strict=True)
        ]
        await asyncio.gather(*(ev.wait() for ev in events))
        ready.set()
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    out.put(per_stream)


async def _create(base: str, headers: dict[str, str], rate: float, seconds: float) -> Any:
    sent: dict[str, tuple[float, float]] = {}
    failures = 0
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:

        async def one() -> None:
            nonlocal failures
            started = time.time()
            response = await client.post(
                f"{base}/api/v2/ticketing/ticket/create/james/16910?{QUERY}",
                headers=headers,
                json=BODY,
            )
            if response.status_code != 200:
                failures += 1
                return
            sent[response.json()["objectId"]] = (started, time.time())

        tasks = []
        begin = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return sent, failures


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    url = fresh_database("bench_sse")
    data_dir = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    env = {
        "TICKETING_DATABASE_URL": url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
        "TICKETING_JSON_LOGS": "false",
    }
    ticketing("migrate", env=env)
    tenant_id = new_tenant_id()
    config = data_dir / "tenant.json"
    config.write_text(json.dumps({"tenants": [tenant_config(tenant_id, "bench")]}))
    ticketing("load", str(config), env=env)
    token = ticketing(
        "token", "--tenant", tenant_id, "--realm", "bench", "--user", "agent",
        "--roles", "ticket_agent", "--scope", "tickets:read tickets:write", env=env,
    ).strip()  # fmt: skip
    headers = {"authorization": f"Bearer {token}", "x-tenantid": tenant_id, "realmname": "bench"}
    server, base = start_server(env, workers=1, log=data_dir / "server.log")
    port = int(base.rsplit(":", 1)[1])
    try:
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        readies = []
        clients = []
        per_client = [args.streams // args.clients] * args.clients
        per_client[0] += args.streams - sum(per_client)
        window = args.seconds + 15
        for count in per_client:
            ready = context.Event()
            process = context.Process(
                target=_client, args=(port, headers, count, window, out, ready)
            )
            process.start()
            clients.append(process)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(120):
                raise SystemExit("streams did not open")
        rss_idle = peak_rss_mib(server.pid)
        sent, failures = asyncio.run(
            _create(base, {**headers, "content-type": "application/json"}, args.rate, args.seconds)
        )
        streams: list[dict[str, float]] = []
        for _ in clients:
            streams.extend(out.get(timeout=window + 60))
        for process in clients:
            process.join()
        rss_peak = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait()

    from_answer: list[float] = []
    from_request: list[float] = []
    missing = duplicates = 0
    for seen in streams:
        for object_id, (started, answered) in sent.items():
            at = seen.get(object_id)
            if at is None:
                missing += 1
                continue
            if seen.get(f"{object_id}#n", 0) > 1:
                duplicates += 1
            from_answer.append(max(0.0, at - answered) * 1000)
            from_request.append((at - started) * 1000)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "streams": args.streams,
        "rate": args.rate,
        "seconds": args.seconds,
        "creates": len(sent),
        "create_failures": failures,
        "deliveries": len(from_answer),
        "missing": missing,
        "duplicates": duplicates,
        "p50_ms": round(percentile(from_answer, 50), 1) if from_answer else None,
        "p99_ms": round(percentile(from_answer, 99), 1) if from_answer else None,
        "p99_from_request_ms": round(percentile(from_request, 99), 1) if from_request else None,
        "rss_idle_mib": round(rss_idle, 1),
        "rss_peak_mib": round(rss_peak, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sse.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
