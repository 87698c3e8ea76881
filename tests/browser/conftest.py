"""Browser tests: Playwright drives the system's Chromium against a live server
on the real test database. Each page is screenshotted at desktop and phone
width into test-artifacts/ and checked with axe-core (bundled, offline).

Chromium comes from Debian (`apt-get install chromium`; .ci/run installs it);
Playwright never downloads a browser here. Without /usr/bin/chromium these
tests are skipped with a message saying so.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Stripe at the HTTP edge and signed webhooks, as the billing tests have them.
from tests.billing.conftest import catalog, fake_stripe, stripe_account, stripe_keys, webhooks  # noqa: F401

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it
    # is open; the ORM calls the tests make between page actions are ordinary
    # blocking calls, not async code. Allowed only while the browser is open.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Session:
    """One person's browser: a context at desktop width, signed in or not."""

    def __init__(self, browser, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport=DESKTOP, base_url=base_url, accept_downloads=True)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()

    def sign_in(self, user) -> Session:
        """Sign in without the login form (the sign-up test covers forms)."""
        from django.conf import settings
        from django.test import Client

        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        self.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": self.base_url}])
        return self

    def go(self, path: str):
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path} answered {response and response.status}"
        return self.page

    def snap(self, name: str) -> None:
        """Screenshot the page at desktop and phone width, and check it with axe at both."""
        ARTIFACTS.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9-]+", "-", name.lower())
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self._settle()
            self.page.screenshot(path=str(ARTIFACTS / f"{slug}-{label}.png"), full_page=True)
            assert_accessible(self.page, f"{name} ({label})")
            overflow = self.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                culprits = self.page.evaluate(_WIDE_ELEMENTS, size["width"])
                raise AssertionError(f"{name} ({label}) scrolls sideways by {overflow}px; widest: {culprits}")
        self.page.set_viewport_size(DESKTOP)

    def _settle(self) -> None:
        """Give scripts that follow the window's size (Chart.js redraws its
        canvas on resize) a moment to catch up before the page is judged:
        up to a second for nothing to be wider than the window."""
        try:
            self.page.wait_for_function(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth", timeout=1000)
        except PlaywrightTimeoutError:
            pass  # still too wide: the overflow check below names the culprit

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_session(browser, live_server):
    sessions = []

    def make() -> Session:
        session = Session(browser, live_server.url)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


# Elements sticking out past the viewport, outermost first, to say what makes a page scroll sideways.
_WIDE_ELEMENTS = """(width) => [...document.body.querySelectorAll('*')]
  .filter(e => e.getBoundingClientRect().right > width + 1)
  .filter(e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return false; } return true; })
  .slice(0, 6)
  .map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')} right=${Math.round(e.getBoundingClientRect().right)}`)"""

_axe = None


def assert_accessible(page, where: str) -> None:
    """axe-core's WCAG 2 A/AA rules; serious and critical violations fail the test."""
    global _axe
    if _axe is None:
        from axe_playwright_python.sync_playwright import Axe

        _axe = Axe()
    results = _axe.run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    detail = "\n".join(
        f"  {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad
    )
    assert not bad, f"accessibility violations on {where}:\n{detail}"


@pytest.fixture(autouse=True)
def rate_card(transactional_db):
    """The default rate card and catalog, as the data migrations load them (the
    suite skips migrations). The live server's thread reads the same database."""
    from billing import services
    from usage.services import rates

    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    services.catalog_load()
    yield rates.current_card()
    rates.clear_cache()
