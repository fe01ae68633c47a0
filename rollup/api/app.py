"""The app factory: one FastAPI app over a sequencer, its routers, its error handlers and
the ``POST /v1/actions`` fast path.

Admin endpoints (``/v1/admin/...``: system actions from the bridge, cutting and marking
batches) exist only when the node has an admin token (``admin_token`` / ``admin_token_file``)
and answer only on loopback unless ``admin_remote`` is set; see ``rollup/NODE.md`` for what
an admin can and cannot do. In-process callers use the ``Sequencer`` methods instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from rollup.api import errors
from rollup.api.deps import AdminGate
from rollup.api.ingress import Ingress, answer, is_action_post
from rollup.api.routers import actions, admin, batches, chain, ops, state
from rollup.blob_routes import blob_router
from rollup.config import NodeConfig
from rollup.explorer import router as explorer_router
from rollup.metrics import Metrics
from sequencer.sequencer import Sequencer

ROUTERS = (actions.router, chain.router, state.router, batches.router, ops.router,
           admin.router)
TITLE = "FLockChain node"
DESCRIPTION = ("Micro-rollup node for federated learning (SPEC §12). Errors are "
               "`{reason, detail}` JSON.")


class NodeApp(FastAPI):
    """The node's FastAPI app, with ``POST /v1/actions`` answered before FastAPI's own
    middleware stack (telemetry, body limit, error middleware, routing): the hottest
    endpoint reads its raw stream itself (``rollup.api.ingress``) and renders every
    outcome, including an unexpected exception, as the same ``{reason, detail}`` JSON the
    stack would. Measured: the stack cost ~13 % of the event loop's time per small action
    (FastAPI 0.165's telemetry reads the environment on every request)."""

    ingress: Ingress | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ingress is not None and is_action_post(scope):
            try:
                status, body = await self.ingress(scope.get("headers", ()), receive)
            except Exception as exc:  # what errors.install's catch-all would answer
                status, body = errors.internal(exc)
            await answer(send, status, body)
            return
        await super().__call__(scope, receive, send)


def openapi_doc() -> dict:
    """The node's OpenAPI document without a sequencer (for tooling and fuzzing)."""
    doc = FastAPI(title=TITLE, version="1", description=DESCRIPTION)
    for r in ROUTERS:
        doc.include_router(r)
    return doc.openapi()


def create_app(sequencer: Sequencer, config: NodeConfig, metrics: Metrics | None = None,
               manage: bool = True) -> FastAPI:
    """The ASGI app over ``sequencer``. With ``manage`` the app's lifespan starts the
    sequencer's threads and closes it (and its database) at shutdown."""
    metrics = metrics or Metrics()
    seq = sequencer
    metrics.gauges["flockchain_mempool_size"] = lambda: float(seq.mempool_size)
    metrics.height = seq.height

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage:
            seq.start()
        try:
            yield
        finally:
            if manage:
                await run_in_threadpool(seq.close)

    app = NodeApp(title=TITLE, version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.sequencer = seq
    app.state.metrics = metrics
    app.state.config = config
    app.state.admin_gate = AdminGate(config.resolved_admin_token(), config.admin_remote,
                                     config.admin_failures_per_minute)
    ingress = Ingress(seq, config, metrics)
    app.state.ingress = ingress
    app.ingress = ingress
    errors.install(app)
    for r in ROUTERS:
        app.include_router(r)
    app.include_router(blob_router(seq, config))  # chunked uploads of large blobs
    app.include_router(explorer_router)  # /explorer/ pages and /v1/tasks/{id}/model
    return app
