"""The explorer's HTML routes under ``/explorer/`` (read-only; GET only).

Why server-rendered Jinja2 plus one small script: every page is complete HTML without
JavaScript (easy to test, easy to read with curl), and ``static/explorer.js`` adds what
needs a browser: the plots (uPlot, vendored from npm into ``static/``) and live updates.
Live updates poll ``/explorer/head``; when the height or a batch status changes the script
re-fetches the current page with ``X-Explorer-Partial: 1`` and swaps the ``<main>`` content,
so a page follows new blocks without a reload.
"""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rollup.explorer import fmt, views
from rollup.schemas import MAX_SQL_INT

# Path numbers bounded like the /v1 routes' (BIGINT), so no query overflows a column.
Num = Annotated[int, Path(ge=0, le=MAX_SQL_INT)]

HERE = FsPath(__file__).parent
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
STATIC_FILES = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in STATIC_TYPES}

env = Environment(loader=FileSystemLoader(HERE / "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
env.filters.update(eth=fmt.eth, short=fmt.short, pct=fmt.pct, points=fmt.points,
                   reason=fmt.reason_text, num=fmt.number,
                   tojson_compact=lambda v: json.dumps(v, separators=(",", ":")))
env.tests["good"] = lambda v: str(v) in fmt.GOOD_VERDICTS

router = APIRouter(prefix="/explorer", include_in_schema=False)


def _render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    seq = request.app.state.sequencer
    partial = request.headers.get("x-explorer-partial") == "1"
    html = env.get_template(name).render(partial=partial, chain_id=seq.chain_id,
                                         head=seq.height, **ctx)
    return HTMLResponse(html, status_code=status)


def _missing(request: Request, what: str) -> HTMLResponse:
    return _render(request, "missing.html", status=404, what=what)


@router.get("", response_class=RedirectResponse)
def explorer_root() -> RedirectResponse:
    return RedirectResponse("/explorer/")


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return _render(request, "home.html", v=views.home_view(request.app.state.sequencer))


@router.get("/head")
def head(request: Request) -> JSONResponse:
    """What the live script polls: changes whenever a page could show something new."""
    seq = request.app.state.sequencer
    b = seq.latest_batch()
    return JSONResponse({"height": seq.height, "batch": b.idx if b else None,
                         "batch_status": b.l1_status if b else None})


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: Num) -> HTMLResponse:
    v = views.task_view(request.app.state.sequencer, task_id)
    if v is None:
        return _missing(request, f"task {task_id}")
    return _render(request, "task.html", v=v)


@router.get("/tasks/{task_id}/epochs/{epoch}", response_class=HTMLResponse)
def epoch_page(request: Request, task_id: Num, epoch: Num) -> HTMLResponse:
    v = views.epoch_view(request.app.state.sequencer, task_id, epoch)
    if v is None:
        return _missing(request, f"epoch {epoch} of task {task_id}")
    return _render(request, "epoch.html", v=v)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request) -> HTMLResponse:
    return _render(request, "accounts.html", accounts=views.accounts_view(
        request.app.state.sequencer))


@router.get("/accounts/{pubkey}", response_class=HTMLResponse)
def account_page(request: Request, pubkey: str) -> HTMLResponse:
    try:
        pk = bytes.fromhex(pubkey.removeprefix("0x"))
    except ValueError:
        pk = b""
    if len(pk) != 32:
        return _missing(request, f"account {pubkey} (a pubkey is 32 bytes of hex)")
    return _render(request, "account.html", v=views.account_view(request.app.state.sequencer,
                                                                  pk))


@router.get("/blocks", response_class=HTMLResponse)
def blocks_page(request: Request,
                upto: int | None = Query(None, ge=0, le=MAX_SQL_INT)) -> HTMLResponse:
    return _render(request, "blocks.html", v=views.blocks_view(request.app.state.sequencer,
                                                                upto))


@router.get("/blocks/{height}", response_class=HTMLResponse)
def block_page(request: Request, height: Num) -> HTMLResponse:
    v = views.block_view(request.app.state.sequencer, height)
    if v is None:
        return _missing(request, f"block {height}")
    return _render(request, "block.html", v=v)


@router.get("/batches", response_class=HTMLResponse)
def batches_page(request: Request) -> HTMLResponse:
    return _render(request, "batches.html", batches=views.batches_view(
        request.app.state.sequencer))


@router.get("/static/{name}")
def static(name: str) -> Response:
    """Only the files shipped in ``static/`` (a fixed list: no path is ever joined)."""
    p = STATIC_FILES.get(name)
    if p is None:
        return JSONResponse({"reason": "not_found", "detail": name}, status_code=404)
    return Response(p.read_bytes(), media_type=STATIC_TYPES[p.suffix],
                    headers={"cache-control": "max-age=3600"})
