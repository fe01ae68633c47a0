"""The node's HTTP API (SPEC §12), all under ``/v1``: an app factory (``app``), shared
dependencies (``deps``: the sequencer, the config, ``require_admin``), errors (``errors``:
every error is ``{"reason", "detail"}`` with the status of
``sequencer.errors.STATUS_BY_REASON``), the pure-ASGI fast path for ``POST /v1/actions``
(``ingress``) and one router per resource (``routers``). Response shapes are the pydantic
models of ``rollup.schemas``, shared with the SDK.
"""

from rollup.api.app import create_app
from rollup.api.errors import ApiError, error

__all__ = ["ApiError", "create_app", "error"]
