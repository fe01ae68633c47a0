"""HTTP/1.1 connection limits for the node's uvicorn server (a protocol class).

Why our own protocol class: uvicorn's httptools protocol has no header size limit (one
streaming header grew RSS by 45 MiB per connection; a 16 MiB header got a 200) and no
timeout before the first request (1,021 idle sockets locked every client out), and h11's
limit answers 400, not 431. :func:`protocol_class` returns a subclass of uvicorn's
``HttpToolsProtocol`` (same parser, same fast path) that adds:

* **header limits**: request line + headers at most ``max_header_bytes`` and at most
  ``max_headers`` lines, counted as bytes arrive (before the parser buffers a partial
  header), answered ``431 Request Header Fields Too Large`` and closed;
* **idle timeout**: a connection with no request in progress (never sent one, or between
  keep-alive requests) is closed after ``idle_timeout`` seconds;
* **slow requests**: headers must be complete within ``header_timeout`` seconds of their
  first byte; after ``body_grace`` seconds a body must have averaged ``body_min_rate``
  bytes/s, checked every second (slowloris / slow POST);
* **connection cap**: beyond ``max_connections`` open connections, the longest-idle one is
  closed to make room (a new client is still served); if none is idle the new connection
  gets 503 and is closed.

Figures (bench/hostile.py, loopback): a 1 MiB header gets 431 after reading at most
``max_header_bytes`` + one read chunk; 2,000 idle connections are all closed within
``idle_timeout`` + 1 s while new clients keep being served.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    max_headers: int = 64
    idle_timeout: float = 10.0
    header_timeout: float = 10.0
    body_min_rate: int = 64 * 1024
    body_grace: float = 10.0
    max_connections: int = 1000


_REASONS = {431: b"Request Header Fields Too Large", 408: b"Request Timeout",
            503: b"Service Unavailable"}


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`HttpLimits`."""

    limits = HttpLimits()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._in_headers = True
        self._hdr_bytes = 0
        self._hdr_lines = 0
        self._hdr_size = 0
        self._too_large = False
        self._timer: asyncio.TimerHandle | None = None  # header / body-rate checks
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_active = time.monotonic()
        self._idle_since = self._last_active
        self._body_start = 0.0
        self._body_bytes = 0
        self._feeding = False  # inside data_received: timers are decided after the feed

    # ---------------------------------------------------------------- timers

    def _arm(self, delay: float, fn: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, fn)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_idle(self) -> None:
        """The idle check, armed once and re-armed when it fires (not per request: a
        keep-alive connection serving thousands of requests per second would otherwise
        create and cancel a timer for each)."""
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.limits.idle_timeout,
                                                    self._on_idle_timeout)

    def _idle(self) -> bool:
        """No request in progress: between requests and no header bytes pending."""
        return self._in_headers and self._hdr_bytes == 0 and (
            self.cycle is None or self.cycle.response_complete)

    def _close(self) -> None:
        self._disarm()
        self._disarm_idle()
        if not self.transport.is_closing():
            self.transport.close()

    def _disarm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        if self.transport.is_closing():
            return
        left = self.limits.idle_timeout
        if self._idle():  # idle since the last response (or since connecting)
            left -= time.monotonic() - self._idle_since
            if left <= 0:
                self._close()
                return
        self._idle_timer = self.loop.call_later(left, self._on_idle_timeout)

    def _on_header_timeout(self) -> None:
        if self._in_headers:
            self._reply(408, "request headers not received in time")

    def _check_body_rate(self) -> None:
        if self._in_headers or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused:  # the app is behind, not the client: do not count it
            self._body_start += 1.0
            self._arm(1.0, self._check_body_rate)
            return
        elapsed = time.monotonic() - self._body_start
        if elapsed >= self.limits.body_grace and \
                self._body_bytes < self.limits.body_min_rate * elapsed:
            self._reply(408, "request body too slow")
            return
        self._arm(1.0, self._check_body_rate)

    def _reply(self, status: int, msg: str) -> None:
        body = msg.encode()
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]))
        self._close()

    # ---------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._evict_one():
            self._reply(503, "too many connections")
            return
        self._arm_idle()

    def _evict_one(self) -> bool:
        idle = [c for c in self.connections if c is not self
                and isinstance(c, GuardedHttpToolsProtocol) and c._idle()]
        if not idle:
            return False
        min(idle, key=lambda c: c._last_active)._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_idle()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Timers are armed after the parser has seen ``data``: a request that arrives
        whole in one read (every small action) needs neither the header timer nor the
        body-rate check, so none is created for it."""
        now = self._last_active = time.monotonic()
        started = self._in_headers and self._hdr_bytes == 0  # first bytes of a request
        if self._in_headers:
            self._hdr_bytes += len(data)
        self._feeding = True
        try:
            super().data_received(data)
        finally:
            self._feeding = False
        if self.transport.is_closing():
            return
        if self._in_headers:
            if self._hdr_bytes > self.limits.max_header_bytes:
                self._reply_431()
            elif started and self._hdr_bytes > 0 and self._timer is None:
                # headers incomplete: they must be complete header_timeout after this read
                self._arm(self.limits.header_timeout - (time.monotonic() - now),
                          self._on_header_timeout)
        elif self._timer is None and self.cycle is not None and self.cycle.more_body:
            self._arm(1.0, self._check_body_rate)  # a body still streaming in

    def _reply_431(self) -> None:
        self._too_large = False
        self._reply(431, f"request line and headers exceed {self.limits.max_header_bytes} "
                         f"bytes or {self.limits.max_headers} lines")

    def send_400_response(self, msg: str) -> None:
        if self._too_large:  # our callback raised: the parser reports it as an error
            self._reply_431()
            return
        super().send_400_response(msg)

    # ---------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._hdr_lines = 0
        self._hdr_size = 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hdr_lines += 1
        self._hdr_size += len(name) + len(value) + 4
        if self._hdr_lines > self.limits.max_headers or \
                self._hdr_size + len(self.url) > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()
        self._body_start = self._last_active
        self._body_bytes = 0
        if not self._feeding:  # (always feeding with httptools; data_received arms it)
            self._arm(1.0, self._check_body_rate)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._in_headers = True
        self._hdr_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._idle_since = time.monotonic()
            self._arm_idle()


def protocol_class(limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to ``limits`` (pass it as ``uvicorn.Config(http=...)``)."""
    return type("NodeHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


__all__ = ["GuardedHttpToolsProtocol", "HttpLimits", "protocol_class"]
