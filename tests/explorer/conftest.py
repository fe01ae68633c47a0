"""Fixtures for the explorer tests: one real chain with attackers per session, a headless
Debian chromium driven by Playwright, and a folder for screenshots.

Screenshots go to ``test-artifacts/explorer/`` at the repository root (gitignored), or to
``$FLOCKCHAIN_ARTIFACTS`` when set, so a CI job can upload them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .chain import Chain, build_chain

CHROMIUM = os.environ.get("FLOCKCHAIN_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    ch = build_chain(tmp_path_factory.mktemp("explorer-chain"))
    try:
        yield ch
    finally:
        ch.node.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    d = Path(os.environ.get("FLOCKCHAIN_ARTIFACTS", ROOT / "test-artifacts")) / "explorer"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _missing(why: str) -> None:
    """Skip, except in CI (``CI=true``), where a missing browser is a broken install."""
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def _chromium() -> str:
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not exe:
        _missing(f"Debian chromium not found at {CHROMIUM} (make install runs "
                 "'apt-get install chromium' when it can)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements.lock)")
    return str(exe)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh page that fails the test on any JavaScript error."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"
