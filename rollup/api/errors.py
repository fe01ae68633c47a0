"""Errors as ``{"reason": <machine-readable>, "detail": <human text>}`` JSON.

Why one place: handlers raise :class:`ApiError` with a :class:`Reason`; its status comes
from the one table (``sequencer.errors.STATUS_BY_REASON``), so a reason has the same status
whichever route or layer refuses.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sequencer.errors import SubmitError, status_for
from sequencer.ratelog import RateLimitedLog
from state_machine.actions import ActionError
from state_machine.reasons import Reason

log = logging.getLogger("flockchain.api")
_internal_log = RateLimitedLog(log, every_s=60.0)

class ApiError(Exception):
    """Raised by handlers and dependencies; rendered by :func:`install`."""

    def __init__(self, reason: Reason | str, detail: str = "", status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = str(reason)
        self.detail = detail
        self.status = status if status is not None else status_for(self.reason)
        self.headers = headers


def error_bytes(reason: str, detail: str = "") -> bytes:
    return json.dumps({"reason": str(reason), "detail": detail}, separators=(",", ":")).encode()


def error(status: int, reason: Reason | str, detail: str = "",
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"reason": str(reason), "detail": detail}, status_code=status,
                        headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                     for e in exc.errors())


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every failure into ``{reason, detail}``."""

    @app.exception_handler(ApiError)
    async def _api(_r: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.reason, exc.detail, exc.headers)

    @app.exception_handler(SubmitError)
    async def _submit(_r: Request, exc: SubmitError) -> JSONResponse:
        return error(exc.status, exc.reason, exc.detail)

    @app.exception_handler(ActionError)
    async def _action(_r: Request, exc: ActionError) -> JSONResponse:
        return error(status_for(exc.reason), exc.reason, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: Reason.NOT_FOUND, 405: Reason.METHOD_NOT_ALLOWED}.get(
            exc.status_code, Reason.HTTP_ERROR)
        return error(exc.status_code, reason, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, Reason.MALFORMED, _validation_detail(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _storage(_r: Request, exc: SQLAlchemyError) -> JSONResponse:
        _internal_log.error("storage error: %s", str(exc)[:200])
        return error(503, Reason.STORAGE_ERROR, type(exc).__name__)

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:
        status, body = internal(exc)
        return Response(body, status_code=status, media_type="application/json")


def internal(exc: Exception) -> tuple[int, bytes]:
    """The answer to an unexpected exception (logged, rate-limited): 500 ``internal_error``
    with the exception's type name; shared by the handlers and the ingress fast path."""
    _internal_log.exception("internal error: %s", type(exc).__name__)
    return 500, error_bytes(Reason.INTERNAL_ERROR, type(exc).__name__)
