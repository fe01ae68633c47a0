"""The node's block explorer (``/explorer/``) and model export (``/v1/tasks/{id}/model``).

Both are read-only views over the node's sequencer (``app.state.sequencer``): nothing here
submits actions or touches admin endpoints. The app factory includes ``router`` with one
line, so the explorer is served by the node's own process and port.
"""

from __future__ import annotations

from fastapi import APIRouter

from rollup.explorer import export, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(export.router)

__all__ = ["router"]
