"""A real server process and Debian's Chromium, driven by Playwright.

CI installs Chromium with apt-get (.ci/run). On a developer machine without it these
tests are skipped with a message; under CI=true a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reviewapp import REPO_ROOT, create_app
from tests.conftest import FAST, PASSWORD, add_user

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Server:
    """``run.py serve`` on a free loopback port, that can be killed and started again."""

    def __init__(self, data: Path) -> None:
        self.data = data
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        env = {**os.environ, "REVIEWAPP_DATA": str(self.data)}
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--port", str(self.port)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/login", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def serve(data: Path, kiosk: bool = False, pins: dict[str, str] | None = None) -> Server:
    """A node with the account ``admin`` (and contributors signing in with these PINs), served."""
    app = create_app({"DATA_DIR": str(data), **FAST})
    store = app.extensions["store"]
    store.save_node({"id": "00000000-0000-4000-8000-000000000001", "name": "URUBATT portátil 3", "country": "UY",
                     "level": "field", "language": "es", "created_at": "2026-11-01T00:00:00.000Z",
                     **({"kiosk": True} if kiosk else {})})  # fmt: skip
    add_user(app, "admin", "admin")
    for username, pin in (pins or {}).items():
        add_user(app, username, "contributor", pin=pin)
    store.close()
    served = Server(data)
    served.start()
    return served


@pytest.fixture
def server(tmp_path):
    served = serve(tmp_path / "data")
    yield served
    if served.proc.poll() is None:
        served.kill()


KIOSK_PINS = {"ana": "4821", "bruno": "7315"}


@pytest.fixture
def kiosk_server(tmp_path):
    """A shared laptop in kiosk mode: officers ana and bruno sign in with their PINs."""
    served = serve(tmp_path / "data", kiosk=True, pins=KIOSK_PINS)
    yield served
    if served.proc.poll() is None:
        served.kill()


@pytest.fixture(scope="session")
def playwright():
    from playwright.sync_api import sync_playwright

    chromium()
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright):
    browser = playwright.chromium.launch(
        executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS
    )
    yield browser
    browser.close()


def sign_in(page, server, username: str = "admin") -> None:
    page.goto(server.url + "/login")
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/reviews/")


def sign_in_with_pin(page, server, username: str) -> None:
    page.goto(server.url + "/login")
    page.fill("#f-username", username)
    page.check("input[name='method'][value='pin']")
    page.fill("#f-pin", KIOSK_PINS[username])
    page.click("button.primary")
    page.wait_for_url("**/reviews/")


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="es-ES")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, server)
    yield page
    context.close()


class PersistentBrowser:
    """Chromium with a profile folder on disk, that can be killed (SIGKILL) and started again
    on the same folder, as after a crash."""

    def __init__(self, playwright, profile: Path) -> None:
        self.playwright = playwright
        self.profile = profile
        self.context = None

    def launch(self):
        self.context = self.playwright.chromium.launch_persistent_context(
            str(self.profile), executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1366, "height": 768}, locale="es-ES",
        )  # fmt: skip
        page = self.context.pages[0] if self.context.pages else self.context.new_page()
        page.set_default_timeout(15_000)
        return page

    def pid(self) -> int:
        """The browser process itself (not a renderer or helper: those carry --type=)."""
        wanted = f"--user-data-dir={self.profile}"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if wanted in args and not any(a.startswith("--type=") for a in args):
                return int(entry.name)
        raise RuntimeError("the browser process was not found")

    def kill(self) -> None:
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
            except OSError:
                break
            if ") Z " in stat:  # a zombie: dead, not yet reaped by Playwright's driver
                break
            time.sleep(0.05)
        with contextlib.suppress(Exception):  # the browser is gone, which is the point
            self.context.close()
        self.context = None

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None


@pytest.fixture
def persistent(playwright, tmp_path):
    browser = PersistentBrowser(playwright, tmp_path / "profile")
    yield browser
    browser.close()


def shot(page, name: str) -> None:
    """Screenshots for a person to look at (tests/artifacts, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
