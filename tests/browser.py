"""A real browser for UI tests: Debian's chromium driven by Playwright (its own browser download can't work here).

Without /usr/bin/chromium the browser tests skip with a message saying how to get it; in CI a skip fails.
"""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium) to enable")
    from playwright.sync_api import sync_playwright

    # pytest-django refuses ORM calls inside a running event loop; Playwright's sync API runs one.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request, tmp_path):
    """A fresh browser context per test. Screenshots go to ``screenshots_dir``."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def screenshots_dir(request):
    """Where a browser test saves its screenshots: test-results/screenshots/<test name>/ in the checkout."""
    folder = request.config.rootpath / "test-results" / "screenshots" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
