"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

The live server runs in a thread of this process, so one pinned clock (time-machine patches the
process, not a thread) holds for the test, the pages and the services alike. Celery runs eagerly,
so the e-mails a booking sends land in ``mail.outbox``. Every test leaves a screenshot under
``test-artifacts/e2e/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

import config.celery

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Tuesday 1 December 2026, 09:00 in New York (EST, UTC-5).
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
# Playwright's waits for actions and assertions, in milliseconds: generous for a loaded CI
# machine, and a broken page still fails in seconds rather than minutes.
TIMEOUT_MS = 10_000

PageFactory = Callable[..., Page]


@pytest.fixture(scope="package", autouse=True)
def _django_beside_playwright() -> Iterator[None]:
    # Playwright's sync API leaves an asyncio loop registered as running in this thread while it
    # is open, and Django then refuses ORM calls here. The calls the tests and their fixtures
    # make between browser steps are plain synchronous code; the pages run in the live server's
    # own thread. Package scope: the browser is gone, and the guard back, before other tests.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="package")
def playwright(_django_beside_playwright: None) -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM}: apt-get install chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Always the system's browser: Playwright is never asked to download one.
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(autouse=True)
def _eager_celery() -> Iterator[None]:
    conf = config.celery.app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    # tick=True: pages and the browser's requests need time to pass, only from a known start.
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[PageFactory]:
    """Open a page in a fresh browser context (``timezone_id`` sets the device's zone); each is
    photographed when the test ends, pass or fail."""
    opened: list[tuple[Page, str]] = []
    artifacts = request.config.rootpath / "test-artifacts" / "e2e"
    artifacts.mkdir(parents=True, exist_ok=True)

    def open_page(*, timezone_id: str = "America/New_York", **options: object) -> Page:
        context = browser.new_context(
            locale="en-US",
            timezone_id=timezone_id,
            viewport={"width": 412, "height": 915},  # a phone: the pages are mobile-first
            **options,  # type: ignore[arg-type]
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        suffix = f"-{len(opened) + 1}" if opened else ""
        opened.append((page, f"{request.node.name}{suffix}"))
        return page

    yield open_page
    for page, name in opened:
        try:
            page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        finally:
            page.context.close()


@pytest.fixture
def page(new_page: PageFactory) -> Page:
    return new_page()


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """Photograph a step worth keeping besides the last: ``snapshot(page, "slots")``."""
    artifacts = request.config.rootpath / "test-artifacts" / "e2e"
    artifacts.mkdir(parents=True, exist_ok=True)

    def take(page: Page, label: str) -> None:
        page.screenshot(path=str(artifacts / f"{request.node.name}-{label}.png"), full_page=True)

    return take
