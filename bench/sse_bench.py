"""SSE fan-out: many open list-update streams on one server process while tickets are created
at a steady rate; reports commit-to-event latency and the server's peak RSS.

The latency of a ticket on a stream is measured from when its create response arrived
(the create committed just before) to when the stream delivered its `created` event; the
figure from when the create request was sent is printed too (an upper bound).

The streams are held by `--clients` separate processes (uvloop), each read finding the
`created` events' object ids with one regular expression call and keeping them for the end of
the run, so that a client costs little CPU per event and the figure is the server's, not the
client's; the creates come from the main process. The server's and the clients' CPU seconds
are reported, since on a small machine everything shares the same cores.

Usage: python bench/sse_bench.py [--streams 1000] [--rate 200] [--seconds 30] [--clients 2]
    [--server throwaway|machine]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEV_ISSUER,
    RESULTS,
    add_server_arguments,
    cpu_seconds,
    machine,
    new_tenant_id,
    open_cluster,
    peak_rss_mib,
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
# A created event's object id, wherever it falls in what was read (frames are never split
# by the server, but a read may end inside one: the tail is kept for the next read).
CREATED = re.compile(rb'event: created\ndata: \{"objectId":"([^"]+)"')


class _Stream(asyncio.Protocol):
    """One list-update stream. Each read is cut after its last complete frame and the object
    ids of the `created` events in it are kept, with the time of the read, as one list; they
    are counted only after the run, so that a read costs a few C calls, not a Python step per
    event (the clients share the server's cores)."""

    def __init__(self, request: bytes, opened: asyncio.Event) -> None:
        self.request = request
        self.opened = opened
        self.reads: list[tuple[float, list[bytes]]] = []
        self.tail = b""

    def connection_made(self, transport: Any) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        text = self.tail + data if self.tail else data
        cut = text.rfind(b"\n\n") + 2
        if cut < 2:
            self.tail = text
            return
        frames, self.tail = text[:cut], text[cut:]
        if not self.opened.is_set() and b"event: connected" in frames:
            self.opened.set()
        ids = CREATED.findall(frames)
        if ids:
            self.reads.append((now, ids))

    def seen(self) -> dict[bytes, tuple[float, int]]:
        """Each object id's first arrival and how many times it came."""
        found: dict[bytes, tuple[float, int]] = {}
        for at, ids in self.reads:
            for object_id in ids:
                first = found.get(object_id)
                found[object_id] = (at, 1) if first is None else (first[0], first[1] + 1)
        return found


async def _stream(port: int, headers: dict[str, str], opened: asyncio.Event) -> _Stream:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"GET /api/v2/ticketing/ticket/sse/list/updates?{QUERY} HTTP/1.1\r\n"
        f"host: 127.0.0.1\r\naccept: text/event-stream\r\n{lines}\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _transport, stream = await loop.create_connection(
        lambda: _Stream(request, opened), "127.0.0.1", port
    )
    return stream


def _client(
    port: int, headers: dict[str, str], count: int, seconds: float, out: Any, ready: Any,
    done: Any,
) -> None:  # fmt: skip
    """A process holding `count` streams; reports when each got each ticket."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    streams: list[_Stream] = []

    async def main() -> None:
        events = [asyncio.Event() for _ in range(count)]
        for i in range(count):
            streams.append(await _stream(port, headers, events[i]))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.gather(*(ev.wait() for ev in events))
        ready.set()
        await asyncio.to_thread(done.wait, seconds)

    started = time.process_time()
    asyncio.run(main())
    used = time.process_time() - started
    result = [{key.decode(): value for key, value in stream.seen().items()} for stream in streams]
    out.put((result, used))


async def _create(port: int, headers: dict[str, str], rate: float, seconds: float) -> Any:
    """Creates `rate` tickets a second for `seconds`, on up to 32 keep-alive connections of a
    small HTTP/1.1 client (httpx's pool costs more CPU than the server under a backlog)."""
    sent: dict[str, tuple[float, float]] = {}
    failures = 0
    body = orjson.dumps(BODY)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /api/v2/ticketing/ticket/create/james/16910?{QUERY} HTTP/1.1\r\n"
        f"host: 127.0.0.1\r\naccept: application/json\r\ncontent-type: application/json\r\n"
        f"{head}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    due: asyncio.Queue[float | None] = asyncio.Queue()

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while await due.get() is not None:
            started = time.time()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            if status != 200:
                failures += 1
                continue
            sent[orjson.loads(answer)["objectId"]] = (started, time.time())
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(32)]
    begin = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        delay = begin + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(time.time())
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return sent, failures


def run(args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    url = cluster.fresh_database(args.database)
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
        "--roles", "ticket_agent", "--scope", "tickets:read tickets:write", "--ttl", "7200",
        env=env,
    ).strip()  # fmt: skip
    headers = {"authorization": f"Bearer {token}", "x-tenantid": tenant_id, "realmname": "bench"}
    server, base = start_server(env, workers=1, log=data_dir / "server.log")
    port = int(base.rsplit(":", 1)[1])
    clients: list[Any] = []
    try:
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        done = context.Event()
        readies = []
        per_client = [args.streams // args.clients] * args.clients
        per_client[0] += args.streams - sum(per_client)
        # The clients stop when told (`done`); the window only bounds a run that went wrong.
        window = args.seconds * 20 + 600
        for count in per_client:
            ready = context.Event()
            process = context.Process(
                target=_client, args=(port, headers, count, window, out, ready, done)
            )
            process.start()
            clients.append(process)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(180):
                raise SystemExit("streams did not open")
        print(f"{args.streams} streams open", flush=True)
        rss_idle = peak_rss_mib(server.pid)
        cpu_before = cpu_seconds(server.pid)
        began = time.monotonic()
        sent, failures = asyncio.run(_create(port, headers, args.rate, args.seconds))
        creating = time.monotonic() - began
        # Time for the last events to arrive everywhere.
        time.sleep(args.drain)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        done.set()
        streams: list[dict[str, tuple[float, int]]] = []
        client_cpu = 0.0
        for _ in clients:
            result, used = out.get(timeout=120)
            streams.extend(result)
            client_cpu += used
        for process in clients:
            process.join()
        rss_peak = peak_rss_mib(server.pid)
    finally:
        for process in clients:
            if process.is_alive():
                process.terminate()
        server.terminate()
        server.wait()
        cluster.drop_database(args.database)

    from_answer: list[float] = []
    from_request: list[float] = []
    missing = duplicates = 0
    for seen in streams:
        for object_id, (started, answered) in sent.items():
            got = seen.get(object_id)
            if got is None:
                missing += 1
                continue
            at, count = got
            if count > 1:
                duplicates += 1
            from_answer.append(max(0.0, at - answered) * 1000)
            from_request.append((at - started) * 1000)
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "streams": args.streams,
        "rate": args.rate,
        "seconds": args.seconds,
        "creates": len(sent),
        "creates_per_s": round(len(sent) / creating, 1),
        "create_failures": failures,
        "deliveries": len(from_answer),
        "missing": missing,
        "duplicates": duplicates,
        "p50_ms": round(percentile(from_answer, 50), 1) if from_answer else None,
        "p99_ms": round(percentile(from_answer, 99), 1) if from_answer else None,
        "max_ms": round(max(from_answer), 1) if from_answer else None,
        "p99_from_request_ms": round(percentile(from_request, 99), 1) if from_request else None,
        "server_cpu_s_per_s": round(server_cpu / (creating + args.drain), 2),
        "clients_cpu_s": round(client_cpu, 1),
        "rss_idle_mib": round(rss_idle, 1),
        "rss_peak_mib": round(rss_peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2, help="processes holding the streams")
    parser.add_argument("--drain", type=float, default=3, help="seconds to wait after creating")
    add_server_arguments(parser, "ticketing_bench_sse")
    args = parser.parse_args()

    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        result = run(args, cluster)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sse.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if result["missing"] or result["duplicates"] or result["create_failures"]:
        raise SystemExit("some events were missing or duplicated, or some creates failed")


if __name__ == "__main__":
    main()
