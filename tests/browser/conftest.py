"""The browser suite: one live server (memory adapters, the offline checkout, the fake OpenID
provider) per session, driven by Playwright through an installed Chromium.

Chromium: Debian's ``/usr/bin/chromium`` (or one on PATH), else the one Playwright already has,
else ``python -m playwright install chromium`` is tried once; only when none can be had does the
suite fail, with one line saying how to get one. Screenshots go to ``tests/browser/artifacts/``
(ignored by git).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from werkzeug.serving import make_server

from adapters.memory import InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider

ARTIFACTS = Path(__file__).parent / "artifacts"
OWNER = "owner-subject-1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
NO_CHROMIUM = "no Chromium for the browser tests: install one with `apt-get install chromium`"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """The app on memory adapters over real HTTP, with the store the tests may look into."""

    def __init__(self, oidc: FakeOidcProvider) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.store = InMemoryStore()
        seed(self.store.unit_of_work())
        settings = Settings(
            env="test",
            base_url=self.base,
            secret_key="browser-tests-secret-key-0123456789",
            owner_open_id=OWNER,
            oauth_issuer=oidc.issuer,
            oauth_client_id=CLIENT_ID,
            oauth_client_secret=CLIENT_SECRET,
            ratelimit_bookings_per_ip="0",
            ratelimit_bookings_per_email="0",
        )
        # No payments given: bootstrap builds the development offline checkout (memory sessions).
        self.deps: Deps = bootstrap(
            settings,
            uow_factory=self.store.unit_of_work,
            calendar=ScheduleCalendarGateway(),
            notifier=RecordingNotifier(),
        )
        self._server = make_server("127.0.0.1", port, create_app(self.deps), threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="browser-live-server", daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.deps.close()

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="session")
def oidc() -> Iterator[FakeOidcProvider]:
    provider = FakeOidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def server(oidc: FakeOidcProvider) -> Iterator[LiveServer]:
    live = LiveServer(oidc).start()
    yield live
    live.stop()


def _installed(playwright: Playwright) -> str | None:
    """An executable Chromium: the system's, else Playwright's own (None when neither is)."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    try:
        own = playwright.chromium.executable_path
    except Exception:  # Playwright raises when it has no browser of its own
        return None
    return own if own and Path(own).exists() else None


def find_chromium(playwright: Playwright) -> str:
    found = _installed(playwright)
    if found is None:
        try:
            subprocess.run(
                [sys.executable, "-m", "playwright", "install", "chromium"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError):
            pytest.fail(NO_CHROMIUM, pytrace=False)
        found = _installed(playwright)
    if found is None:
        pytest.fail(NO_CHROMIUM, pytrace=False)
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=find_chromium(playwright), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe() -> Axe:
    return Axe()


def new_page(browser: Browser, *, timezone: str, width: int = 1100, **options: Any) -> Page:
    context = browser.new_context(
        timezone_id=timezone, viewport={"width": width, "height": 900}, locale="en-GB", **options
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_accessible(axe: Axe, page: Page) -> None:
    """axe-core finds no serious or critical violation; plus our own page rules."""
    results = axe.run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: " + "; ".join(bad)
    assert page.locator("h1").count() == 1, page.url
    assert page.title().strip(), page.url
    assert page.locator('meta[name="viewport"]').count() == 1, page.url
    assert page.locator('link[rel="icon"]').count() == 1, page.url
    # Every visible form field has a label (axe checks it too; this names the field).
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], f"{page.url}: fields without a label: {unlabelled}"
