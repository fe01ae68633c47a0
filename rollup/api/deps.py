"""Dependencies shared by the routers: the sequencer, the config, typed path/query
integers, and ``require_admin``.

Why integers are bounded here: every integer a client can put in a path or query reaches
an SQL BIGINT column or a Python dict lookup; SQLite raises ``OverflowError`` (a 500) for
values >= 2^63 where PostgreSQL raises a DataError. Validating ``0 <= n <= 2^63 - 1`` up
front gives both databases the same 400.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from rollup.api.errors import ApiError
from rollup.config import NodeConfig
from rollup.metrics import Metrics
from rollup.schemas import MAX_SQL_INT
from rollup.wire import unhex
from sequencer.mempool_guard import TokenBucket
from sequencer.sequencer import Sequencer
from state_machine.reasons import Reason


def get_sequencer(request: Request) -> Sequencer:
    return request.app.state.sequencer


def get_config(request: Request) -> NodeConfig:
    return request.app.state.config


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


Seq = Annotated[Sequencer, Depends(get_sequencer)]
Config = Annotated[NodeConfig, Depends(get_config)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

Height = Annotated[int, Path(ge=0, le=MAX_SQL_INT, description="block height")]
Index = Annotated[int, Path(ge=0, le=MAX_SQL_INT, description="batch index")]
TaskId = Annotated[int, Path(ge=0, le=MAX_SQL_INT)]
EpochNo = Annotated[int, Path(ge=0, le=MAX_SQL_INT)]
BatchQuery = Annotated[int | None, Query(ge=0, le=MAX_SQL_INT,
                                          description="a batch index (default: the head)")]


def hex_arg(s: str, n: int, what: str) -> bytes:
    """A 0x-hex path argument of exactly ``n`` bytes, else 400 ``malformed``."""
    try:
        return unhex(s, n, what)
    except ValueError as exc:
        raise ApiError(Reason.MALFORMED, str(exc)) from None


class AdminGate:
    """Bearer-token check for ``/v1/admin/*`` with rate-limited failures.

    * no token configured: the admin routes answer 404 (they do not exist);
    * a client that is not on loopback gets 403 unless ``admin_remote`` is set (compose
      sets it for its private network);
    * wrong or missing tokens: at most ``per_minute`` failures per client address per
      minute and ``4 * per_minute`` over all clients, then 429 (before comparing, so a
      guess cannot get through) until the bucket refills; a success never costs a token,
      and a client address that once authenticated is limited by its own bucket only, so
      a flood of wrong tokens from elsewhere cannot lock the bridge out.
    """

    def __init__(self, token: str | None, allow_remote: bool, per_minute: int = 10) -> None:
        self.token = token
        self.allow_remote = allow_remote
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._clients: dict[str, TokenBucket] = {}
        self._global = TokenBucket(4 * per_minute / 60, 4 * per_minute)
        self._good: set[str] = set()

    def _bucket(self, client: str) -> TokenBucket:
        if len(self._clients) > 10_000:
            self._clients = {k: b for k, b in self._clients.items() if not b.full()}
        return self._clients.setdefault(client, TokenBucket(self.per_minute / 60,
                                                            self.per_minute))

    def check(self, request: Request) -> None:
        if not self.token:
            raise ApiError(Reason.NOT_FOUND, "admin endpoints are disabled")
        client = request.client.host if request.client else ""
        if not self.allow_remote and not _is_loopback(client):
            raise ApiError(Reason.UNAUTHORIZED, "the admin API answers on loopback only "
                           "(set admin_remote to allow other addresses)", status=403)
        with self._lock:  # spent failure budget: refuse before even comparing
            bucket = self._bucket(client)
            own = bucket.take(0) and bucket.tokens >= 1
            shared = client in self._good or (self._global.take(0) and self._global.tokens >= 1)
            if not (own and shared):
                raise ApiError(Reason.RATE_LIMITED, "too many failed admin authentications",
                               headers={"retry-after": "60"})
        got = request.headers.get("authorization", "")
        if hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            with self._lock:  # a known-good client is not locked out by others' failures
                if len(self._good) < 1024:
                    self._good.add(client)
            return
        with self._lock:
            bucket.take()
            self._global.take()
        raise ApiError(Reason.UNAUTHORIZED, "bad or missing admin token")


def _is_loopback(host: str) -> bool:
    if host in ("testclient", "localhost"):  # Starlette's in-process TestClient
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_admin(request: Request) -> None:
    """FastAPI dependency of every admin route."""
    request.app.state.admin_gate.check(request)
