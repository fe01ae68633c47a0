"""The load generator of ``bench/ingest.py`` (b): raw keep-alive HTTP/1.1 POSTs.

Why not aiohttp or httpx: the generator runs on the same two cores as the node it
measures, so every microsecond it spends per request is taken from the node; aiohttp cost
about as much per request as the node's HTTP layer. Requests are pre-built bytes, the
response parser reads only the status line and Content-Length, and the loop is uvloop.
"""

from __future__ import annotations

import asyncio
import time


def _request(host: str, payload: bytes) -> bytes:
    """The whole HTTP/1.1 request for one action, built before the clock starts."""
    return (b"POST /v1/actions HTTP/1.1\r\nhost: " + host.encode() + b"\r\n"
            b"content-type: application/msgpack\r\ncontent-length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload)


async def _fire(url: str, payloads: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """POST every payload over ``concurrency`` keep-alive connections (one request in
    flight each). Why a raw client: the load generator shares the node's two cores, so its
    own cost per request (aiohttp's was comparable to the node's) must stay small; requests
    are pre-built bytes and the response parser reads only the status and Content-Length.
    Any answer but 202 fails the run."""
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    reqs = [_request(host, p) for p in payloads]
    latencies: list[float] = []
    it = iter(reqs)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for req in it:  # one shared iterator: single-threaded, no lock needed
                t = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                i = head.lower().index(b"content-length:") + 15
                n = int(head[i:head.index(b"\r\n", i)])
                body = await reader.readexactly(n)
                if status != 202:
                    raise RuntimeError(f"{status} {body[:200]!r}")
                latencies.append(time.perf_counter() - t)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


def run_fire(url: str, payloads: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    try:
        import uvloop

        return uvloop.run(_fire(url, payloads, concurrency))
    except ImportError:  # pragma: no cover - uvloop is in the lock file
        return asyncio.run(_fire(url, payloads, concurrency))
