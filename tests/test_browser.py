"""Pages in a real headless Chromium against a running gridgis (Debian's ``chromium``)."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import Engine, text

from tests.conftest import free_port

pytestmark = pytest.mark.browser
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    """A real ``gridgis serve`` on a free loopback port, stopped after the module."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gridgis.cli", "serve", "--port", str(port)],
        env={**os.environ, "GRIDGIS_DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gridgis serve did not start: {process.stderr!r}") from None
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser_page(server: str) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the browser tests (make test installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        yield page
        browser.close()


def test_command_page_draws_the_territory_offline(server: str, browser_page: Page,
                                                  engine: Engine, output_dir: Path) -> None:
    requests: list[str] = []
    errors: list[str] = []
    browser_page.on("request", lambda r: requests.append(r.url))
    browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_page.on("pageerror", lambda e: errors.append(str(e)))
    with engine.connect() as conn:
        grids = conn.execute(text("SELECT count(*) FROM grid")).scalar_one()
        stations = conn.execute(text("SELECT count(*) FROM station")).scalar_one()
        shelters = conn.execute(text("SELECT count(*) FROM shelter")).scalar_one()

    from sqlalchemy.orm import Session

    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "wall_screen", "command", "correct horse battery", [])
        session.commit()
    browser_page.goto(f"{server}/map/command")  # not logged in: the form
    assert browser_page.url.startswith(f"{server}/login")
    browser_page.fill("input[name=username]", "wall_screen")
    browser_page.fill("input[name=password]", "correct horse battery")
    started = time.monotonic()
    browser_page.click("button[type=submit]")
    count = "(name) => Object.keys(window.gridgis.layers[name]._features).length"
    browser_page.wait_for_function(
        f"window.gridgis?.layers && ({count})('grids') === {grids}", timeout=15_000)
    ready_s = time.monotonic() - started
    browser_page.wait_for_function(
        f"({count})('stations') === {stations} && ({count})('shelters') === {shelters}",
        timeout=15_000)
    browser_page.evaluate("document.fonts.ready")
    browser_page.wait_for_timeout(500)
    browser_page.screenshot(path=output_dir / "command.png")

    assert [u for u in requests if not u.startswith(server)] == []
    assert errors == []
    labels = browser_page.inner_text(".leaflet-control-layers")
    assert "网格" in labels and "避护场所" in labels
    print(f"command page: {grids} grids drawn {ready_s:.2f} s after navigation")


def test_command_page_shows_dead_letters(server: str, browser_page: Page,
                                         engine: Engine) -> None:
    """A message the dispatcher gave up on shows on the command page, with its reason."""
    from sqlalchemy.orm import Session

    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "dead_watch", "command", "correct horse battery", [])
        grid = session.execute(text("SELECT id, code FROM grid ORDER BY code LIMIT 1")).one()
        warning_id = session.execute(text(
            "INSERT INTO warning (identifier, sender, sent, source, msg_type, status, level, "
            "level_rank, event) VALUES ('browser-dead-letter', 'test', now(), 'drawn', 'alert', "
            "'actual', 'red', 4, '台风') RETURNING id")).scalar_one()
        alert_id = session.execute(text(
            "INSERT INTO alert (warning_id, grid_id, tier, coverage) VALUES (:w, :g, 'area', 1) "
            "RETURNING id"), {"w": warning_id, "g": grid.id}).scalar_one()
        session.execute(text(
            "INSERT INTO outbox (alert_id, channel, idempotency_key, payload, state, attempts, "
            "last_error) VALUES (:a, 'wecom', 'browser-dead-letter-key', CAST(:p AS jsonb), "
            "'dead', 8, 'wecom: <b>HTTP 404</b>')"),
            {"a": alert_id, "p": f'{{"grid": "{grid.code}", "warning": "browser-dead-letter"}}'})
        session.commit()
    try:
        browser_page.goto(f"{server}/login?next=/map/command")
        browser_page.fill("input[name=username]", "dead_watch")
        browser_page.fill("input[name=password]", "correct horse battery")
        browser_page.click("button[type=submit]")
        panel = browser_page.locator("#gridgis-dead-letters")
        browser_page.wait_for_function(
            "document.getElementById('gridgis-dead-letters')?.dataset.count === '1'",
            timeout=15_000)
        shown = panel.inner_text()
        assert "未送达消息 1 条" in shown and grid.code in shown and "企业微信" in shown
        assert "<b>HTTP 404</b>" in shown  # the reason as text, never as HTML
        assert "gridgis-alarm" in (panel.get_attribute("class") or "")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE alert_id = :a"), {"a": alert_id})
            conn.execute(text("DELETE FROM alert WHERE id = :a"), {"a": alert_id})
            conn.execute(text("DELETE FROM warning WHERE id = :w"), {"w": warning_id})
