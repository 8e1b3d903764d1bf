"""A Server-Sent Events client for tests: reads a real stream in a thread, over real HTTP."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: Any


class SseReader:
    """Opens `url` with `headers` and collects its events until closed or the server ends it."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str]) -> None:
        self.events: list[SseEvent] = []
        self.status: int | None = None
        self.error_body: str | None = None
        self.failure: Exception | None = None
        self.ended = threading.Event()
        self._opened = threading.Event()
        self._closing = False
        self._socket: socket.socket | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(url, headers, params), daemon=True)
        self._thread.start()
        assert self._opened.wait(15), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str], params: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers, params=params) as response:
                self.status = response.status_code
                stream = response.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                self.content_type = response.headers.get("content-type", "")
                if response.status_code != 200:
                    self.error_body = response.read().decode()
                    self._opened.set()
                    return
                self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if fields:
                            event = SseEvent(
                                fields.get("id"),
                                fields.get("event", "message"),
                                json.loads(fields.get("data", "null")),
                            )
                            with self._lock:
                                self.events.append(event)
                        fields = {}
                        continue
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except (httpx.HTTPError, RuntimeError) as exc:
            # The server went away or the test closed the stream: the stream has ended.
            self.failure = None if self._closing else exc
        finally:
            self._opened.set()
            self.ended.set()

    def snapshot(self) -> list[SseEvent]:
        with self._lock:
            return list(self.events)

    def wait_for(
        self, predicate: Callable[[list[SseEvent]], bool], timeout: float = 20
    ) -> list[SseEvent]:
        """Waits until `predicate(events so far)` holds; returns the events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.snapshot()
            if predicate(events):
                return events
            if self.ended.is_set():
                break
            time.sleep(0.05)
        events = self.snapshot()
        assert predicate(events), [(e.id, e.event) for e in events]
        return events

    def of(self, *names: str) -> list[SseEvent]:
        return [e for e in self.snapshot() if e.event in names]

    def close(self) -> None:
        self._closing = True
        # Closing the client does not wake a read blocked in the reader thread: shutting the
        # socket down does (the read sees the end of the stream at once).
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed by the server
                self._socket.shutdown(socket.SHUT_RDWR)
        self._client.close()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the stream's reader did not stop"
