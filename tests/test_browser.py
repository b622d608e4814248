"""Pages in a real headless Chromium against a running gridgis (Debian's ``chromium``)."""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.checklist_helpers import busiest_grid, delete_warning, issue_committed
from tests.live_server import live_server

pytestmark = pytest.mark.browser
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    """A real ``gridgis serve`` on a free loopback port, stopped after the module."""
    with live_server(database_url) as running:
        yield running.base


def log_in(page: Page, url: str, username: str) -> None:
    """Open ``url`` (the log-in form, or a page that leads to it) and log in."""
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")


@pytest.fixture(scope="module")
def browser_page(server: str) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the browser tests (make test installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        # The tests' probes (wait_for_function) evaluate strings, which the pages' CSP
        # forbids; test_pages_run_under_their_content_security_policy runs without bypass.
        page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
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
        log_in(browser_page, f"{server}/login?next=/map/command", "dead_watch")
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


def test_grid_head_works_the_checklist_on_a_phone(server: str, browser_page: Page,
                                                  engine: Engine, output_dir: Path) -> None:
    """A grid head logs in on a narrow touch screen, sees the grid's checklist with names from
    the audited residents read, marks a call done in one tap, and a stale tap (another worker
    changed the item first) shows the item as it now is and changes nothing."""
    from gridgis import auth
    with Session(engine) as session:
        grid = busiest_grid(session)
        auth.add_user(session, "phone_head", "grid_head", "correct horse battery", [grid])
        session.commit()
    identifier = issue_committed(engine, grid)
    with Session(engine) as session:
        checklist_id, items, located = session.execute(text(
            "SELECT c.id, count(i.id), count(i.id) FILTER (WHERE coalesce(i.building_id, "
            "i.resident_id, i.shelter_id, i.station_id) IS NOT NULL) FROM checklist c JOIN alert a "
            "ON a.id = c.alert_id JOIN warning w ON w.id = a.warning_id JOIN checklist_item i "
            "ON i.checklist_id = c.id WHERE w.identifier = :w GROUP BY c.id"),
            {"w": identifier}).one()
        contact = session.execute(text(
            "SELECT i.id, r.name FROM checklist_item i JOIN resident r ON r.id = i.resident_id "
            "WHERE i.checklist_id = :c AND i.kind = 'contact' ORDER BY i.id LIMIT 1"),
            {"c": checklist_id}).one()
        transfer = session.execute(text(
            "SELECT id FROM checklist_item WHERE checklist_id = :c AND kind = 'transfer' "
            "ORDER BY id LIMIT 1"), {"c": checklist_id}).scalar_one()
    assert browser_page.context.browser is not None
    phone = browser_page.context.browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, bypass_csp=True)
    page = phone.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        log_in(page, f"{server}/map/grid", "phone_head")
        page.wait_for_function(
            "document.getElementById('gridgis-checklist')?.dataset.ready === 'true'",
            timeout=15_000)
        assert page.locator(".gridgis-item").count() == items
        assert page.evaluate("document.querySelectorAll('.leaflet-interactive').length") \
            == located
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        card = page.locator(f"#item-{contact.id}")
        assert contact.name in card.inner_text()  # the name, read through the audited API

        card.locator("button", has_text="已联系").tap()
        loads = page.evaluate("Number(document.getElementById('gridgis-checklist')"
                              ".dataset.loads)")
        page.wait_for_function(
            f"document.querySelector('#item-{contact.id}')?.dataset.state === 'done'",
            timeout=10_000)
        # the live feed tells the page of its own change: it reloads once, then settles
        page.wait_for_function("Number(document.getElementById('gridgis-checklist')"
                               f".dataset.loads) > {loads}", timeout=10_000)
        page.locator(".gridgis-hide").check()  # only what is left to do
        assert not card.is_visible() and page.locator(f"#item-{transfer}").is_visible()
        page.locator(f"#item-{transfer} header").tap()  # the household on the map
        page.wait_for_selector(".leaflet-tooltip", timeout=5_000)
        with engine.begin() as conn:  # another worker gets to the household first
            conn.execute(text("UPDATE checklist_item SET version = version + 1, "
                              "state = 'in_progress', note = '邻居在帮忙' WHERE id = :i"),
                         {"i": transfer})
        page.locator(f"#item-{transfer} button", has_text="已离家").tap()
        page.wait_for_function(
            f"document.querySelector('#item-{transfer} .gridgis-msg')?.textContent"
            ".includes('已被他人更新')", timeout=10_000)
        assert page.get_attribute(f"#item-{transfer}", "data-state") == "in_progress"
        household = page.locator(f"#item-{transfer}")
        household.locator("input").fill("")  # a head-count left empty is not "nobody"
        household.locator("button", has_text="已离家").tap()
        page.wait_for_function(f"document.querySelector('#item-{transfer} .gridgis-msg')"
                               "?.textContent.includes('人数请填')", timeout=5_000)
        household.locator("button", has_text="换避护场所").tap()  # nearest with room
        household.locator(".gridgis-pick select").wait_for(timeout=5_000)
        moved_to = household.locator(".gridgis-pick option").nth(1).get_attribute("value")
        household.locator(".gridgis-pick select").select_option(index=1)
        page.wait_for_function(f"document.querySelector('#item-{transfer} .gridgis-msg')"
                               "?.textContent.includes('已保存')", timeout=5_000)
        page.once("dialog", lambda dialog: dialog.accept("邻居开车送"))
        page.locator(f"#item-{transfer} button", has_text="备注").tap()
        page.wait_for_function(f"document.querySelector('#item-{transfer} .gridgis-by')"
                               "?.textContent.includes('邻居开车送')", timeout=5_000)
        page.screenshot(path=output_dir / "grid-head-phone-item.png")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=output_dir / "grid-head-phone.png")
        with engine.connect() as conn:
            state = conn.execute(text(
                "SELECT i.id, i.state, i.stage, i.version, (SELECT count(*) FROM "
                "checklist_event e WHERE e.item_id = i.id) AS events FROM checklist_item i "
                "WHERE i.id IN (:c, :t) ORDER BY i.id = :t"),
                {"c": contact.id, "t": transfer}).all()
            audited = conn.execute(text(
                "SELECT count(*) FROM audit_log a JOIN app_user u ON u.id = a.app_user_id "
                "WHERE u.username = 'phone_head'")).scalar_one()
        assert [tuple(row[1:]) for row in state] == [("done", None, 2, 1),
                                                     ("in_progress", "to_transfer", 4, 2)]
        with engine.connect() as conn:
            shelter = conn.execute(text(
                "SELECT s.code FROM checklist_item i JOIN shelter s ON s.id = i.shelter_id "
                "WHERE i.id = :t"), {"t": transfer}).scalar_one()
        assert shelter == moved_to
        assert audited >= 1
        assert [u for u in requests if not u.startswith(server)] == []
        # Chromium logs every 4xx answer; the stale tap's 412 is the one expected
        assert [e for e in errors if "status of 412" not in e] == []
    finally:
        phone.close()
        delete_warning(engine, identifier)


def test_report_page_renders_offline(server: str, browser_page: Page, engine: Engine,
                                     output_dir: Path) -> None:
    """The after-action report opens in the command centre's browser with nothing fetched
    from outside and no script errors; its map shows the grids reached."""
    with Session(engine) as session:
        grid = busiest_grid(session)
    identifier = issue_committed(engine, grid)
    requests: list[str] = []
    errors: list[str] = []
    browser_page.on("request", lambda r: requests.append(r.url))
    browser_page.on("pageerror", lambda e: errors.append(str(e)))
    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "report_reader", "command", "correct horse battery", [])
        session.commit()
    try:
        log_in(browser_page, f"{server}/login?next=/reports/{identifier}", "report_reader")
        browser_page.wait_for_selector("svg.map", timeout=10_000)
        assert browser_page.locator("svg.map path").count() == 1
        assert "复盘报告" in browser_page.inner_text("h1")
        browser_page.screenshot(path=output_dir / "report.png", full_page=True)
        assert [u for u in requests if not u.startswith(server)] == []
        assert errors == []
    finally:
        delete_warning(engine, identifier)


def test_planner_draws_a_split_validates_and_publishes(server: str, browser_page: Page,
                                                       engine: Engine,
                                                       output_dir: Path) -> None:
    """A planner draws on /map/planner with the Draw tools: a boundary that overlaps its
    neighbours is found out and drawn in red; a line splits a grid, previewed and published."""
    import shapely

    from gridgis import auth
    from tests.test_planning import free_codes, neighbours

    with Session(engine) as session:
        auth.add_user(session, "map_planner", "planner", "correct horse battery", [])
        session.commit()
        pair = neighbours(session)
        grid = shapely.from_wkb(session.execute(text(
            "SELECT ST_AsBinary(boundary) FROM grid WHERE code = :g"), {"g": pair.a}).scalar_one())
        parts = free_codes(session, pair.community, 2)
    inside = grid.representative_point()
    _, south, _, north = grid.bounds
    line = shapely.LineString([(inside.x, south - 1), (inside.x, north + 1)])
    cut = shapely.ops.split(shapely.unary_union(grid), line)
    codes = free_codes_for(parts, len(cut.geoms))
    requests: list[str] = []
    errors: list[str] = []
    browser_page.on("request", lambda r: requests.append(r.url))
    browser_page.on("pageerror", lambda e: errors.append(str(e)))
    answers = iter([",".join(codes)])
    browser_page.on("dialog", lambda d: d.accept(next(answers, "")))
    try:
        log_in(browser_page, f"{server}/login?next=/map/planner", "map_planner")
        browser_page.wait_for_function("window.gridgis?.planner?.loaded === true",
                                       timeout=15_000)

        def pixel(lon: float, lat: float) -> dict[str, float]:
            return browser_page.evaluate(
                "([lon, lat]) => { const p = gridgis.planner.map.latLngToContainerPoint("
                "[lat, lon]); const r = gridgis.planner.map.getContainer()"
                ".getBoundingClientRect(); return {x: p.x + r.left, y: p.y + r.top}; }",
                [lon, lat])

        browser_page.evaluate("([s, w, n, e]) => gridgis.planner.map.fitBounds([[s, w], [n, e]])",
                              [south - 0.002, grid.bounds[0] - 0.002, north + 0.002,
                               grid.bounds[2] + 0.002])
        browser_page.wait_for_timeout(500)
        browser_page.fill(".gridgis-reason", "试一个更大的边界")
        browser_page.click("button[data-do=open]")
        browser_page.wait_for_selector("text=变更集 #", timeout=5_000)
        at = pixel(inside.x, inside.y)
        browser_page.mouse.click(at["x"], at["y"])  # select the grid
        browser_page.wait_for_selector(f".gridgis-selected >> text={pair.a}", timeout=5_000)

        def draw(tool: str, points: list[tuple[float, float]]) -> None:
            browser_page.click(f".leaflet-draw-draw-{tool}")
            for lon, lat in points:  # as a hand does it: move there, press, let go
                at = pixel(lon, lat)
                browser_page.mouse.move(at["x"], at["y"], steps=8)
                browser_page.mouse.down()
                browser_page.mouse.up()
                browser_page.wait_for_timeout(300)
            browser_page.click(".leaflet-draw-actions a[title='Finish drawing']")

        west, _, east, _ = grid.bounds  # a new boundary far over the neighbours: found out
        draw("polygon", [(west - 0.003, south), (east + 0.003, south), (inside.x, north)])
        browser_page.wait_for_selector(f".gridgis-ops >> text=modify {pair.a}", timeout=5_000)
        browser_page.click("button[data-do=validate]")
        browser_page.wait_for_selector("text=校验未通过", timeout=10_000)
        assert browser_page.evaluate("gridgis.planner.findings") > 0  # drawn in red
        assert "overlap" in browser_page.inner_text(".gridgis-findings")
        browser_page.click("button[data-do=abandon]")  # give that one up, start again
        browser_page.fill(".gridgis-reason", "社区拆分网格")
        browser_page.click("button[data-do=open]")
        browser_page.wait_for_selector("text=社区拆分网格", timeout=5_000)
        draw("polyline", [(inside.x, north + 0.001), (inside.x, south - 0.001)])
        browser_page.wait_for_selector(f".gridgis-ops >> text=split {pair.a}", timeout=5_000)
        browser_page.click("button[data-do=validate]")
        browser_page.wait_for_selector("text=校验通过", timeout=10_000)
        browser_page.click("button[data-do=preview]")
        browser_page.wait_for_selector(".gridgis-impact >> text=楼栋", timeout=10_000)
        browser_page.screenshot(path=output_dir / "planner.png")
        browser_page.click("button[data-do=publish]")
        browser_page.wait_for_selector("text=已发布", timeout=15_000)
        with engine.connect() as conn:
            retired = conn.execute(text("SELECT retired_at IS NOT NULL FROM grid WHERE code = :g"),
                                   {"g": pair.a}).scalar_one()
            made = conn.execute(text("SELECT count(*) FROM grid WHERE code = ANY(:c) "
                                     "AND retired_at IS NULL"), {"c": codes}).scalar_one()
        assert retired and made == len(codes)
        assert [u for u in requests if not u.startswith(server)] == []
        assert errors == []
    finally:
        undo_split(engine, pair.a, codes)


def free_codes_for(codes: list[str], n: int) -> list[str]:
    """``n`` codes following the first of ``codes``."""
    first = int(codes[0][12:])
    return [f"{codes[0][:12]}{first + k:03d}" for k in range(n)]


def undo_split(engine: Engine, original: str, parts: list[str]) -> None:
    """Put a split grid back as it was (for the tests after this one)."""
    with engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM grid WHERE code = ANY(:c)"),
                           {"c": parts}).scalars().all()
        if not ids:
            return
        # as it was, history included: no trigger writes a version for this repair
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE grid SET retired_at = NULL, version = version - 1 "
                          "WHERE code = :g"), {"g": original})
        conn.execute(text("UPDATE grid_version SET valid_to = NULL WHERE grid_id = "
                          "(SELECT id FROM grid WHERE code = :g) AND version = "
                          "(SELECT version FROM grid WHERE code = :g)"), {"g": original})
        conn.execute(text("INSERT INTO app_user_grid (app_user_id, grid_id) SELECT app_user_id, "
                          "(SELECT id FROM grid WHERE code = :g) FROM app_user_grid "
                          "WHERE grid_id = ANY(:i) ON CONFLICT DO NOTHING"),
                     {"g": original, "i": ids})
        conn.execute(text("UPDATE building SET grid_id = (SELECT id FROM grid WHERE code = :g) "
                          "WHERE grid_id = ANY(:i)"), {"g": original, "i": ids})
        for table in ("app_user_grid", "grid_version"):
            conn.execute(text(f"DELETE FROM {table} WHERE grid_id = ANY(:i)"), {"i": ids})
        conn.execute(text("DELETE FROM grid WHERE id = ANY(:i)"), {"i": ids})
        conn.execute(text("REFRESH MATERIALIZED VIEW grid_total"))


def test_command_page_colours_a_warned_grid_live(server: str, browser_page: Page,
                                                 engine: Engine, output_dir: Path) -> None:
    """A warning issued while the wall screen watches turns its grid's colour without a
    reload (the live feed says so; the page redraws the grids that changed)."""
    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "live_watch", "command", "correct horse battery", [])
        session.commit()
        grid = busiest_grid(session)
        grids = session.execute(text("SELECT count(*) FROM grid WHERE retired_at IS NULL")
                                ).scalar_one()
    requests: list[str] = []
    errors: list[str] = []
    browser_page.on("request", lambda r: requests.append(r.url))
    browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    identifier = None
    try:
        log_in(browser_page, f"{server}/login?next=/map/command", "live_watch")
        browser_page.wait_for_function(
            f"Object.keys(window.gridgis?.layers?.grids?._features || {{}}).length === {grids}"
            " && gridgis.command.refreshes > 0 && gridgis.command.live", timeout=15_000)
        assert browser_page.evaluate(f"gridgis.command.colourOf('{grid}')") == "#dfe6e9"
        browser_page.evaluate("window.stillTheSamePage = true")
        identifier = issue_committed(engine, grid)
        browser_page.wait_for_function(
            f"gridgis.command.colourOf('{grid}') !== '#dfe6e9'", timeout=10_000)
        assert browser_page.evaluate("window.stillTheSamePage") is True  # no reload
        assert browser_page.evaluate(f"gridgis.command.colourOf('{grid}')") == "#f1c40f"
        assert browser_page.evaluate("gridgis.layers.hazard.getLayers().length") >= 1
        figures = browser_page.inner_text("#gridgis-panel")
        assert "预警网格 1" in figures
        browser_page.select_option(".gridgis-view", "ack")  # the operator's view: unacknowledged
        assert browser_page.evaluate(f"gridgis.command.colourOf('{grid}')") == "#e74c3c"
        browser_page.screenshot(path=output_dir / "command-live.png")
        assert [u for u in requests if not u.startswith(server)] == []
        assert errors == []
    finally:
        if identifier:
            delete_warning(engine, identifier)


def test_a_grid_head_acknowledges_on_the_grids_own_page(server: str, browser_page: Page,
                                                        engine: Engine,
                                                        output_dir: Path) -> None:
    """/map/grid/{code} on a 375-px screen: the grid's alert acknowledged in one tap."""
    from gridgis import auth

    with Session(engine) as session:
        grid = busiest_grid(session)
        auth.add_user(session, "own_page_head", "grid_head", "correct horse battery", [grid])
        session.commit()
    identifier = issue_committed(engine, grid)
    assert browser_page.context.browser is not None
    phone = browser_page.context.browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True, bypass_csp=True)
    page = phone.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        log_in(page, f"{server}/map/grid/{grid}", "own_page_head")
        page.wait_for_selector(".gridgis-ack", timeout=15_000)
        page.locator(".gridgis-ack").tap()
        page.wait_for_selector(".gridgis-alert >> text=已确认", timeout=10_000)
        with engine.connect() as conn:
            acknowledged = conn.execute(text(
                "SELECT a.acknowledged_at IS NOT NULL FROM alert a JOIN warning w "
                "ON w.id = a.warning_id WHERE w.identifier = :w"), {"w": identifier}).scalar_one()
        assert acknowledged
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=output_dir / "grid-own-page.png")
        assert [u for u in requests if not u.startswith(server)] == []
    finally:
        phone.close()
        delete_warning(engine, identifier)


def test_command_page_at_city_scale_draws_grids_from_vector_tiles(
        server: str, browser_page: Page, engine: Engine, output_dir: Path) -> None:
    """Above GRIDGIS_MAP_VECTOR_TILES_ABOVE grids (here forced with ?tiles=true) grids come
    as vector tiles, and a warning still recolours its grid live."""
    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "tile_watch", "command", "correct horse battery", [])
        session.commit()
        grid = busiest_grid(session)
    responses: list[tuple[str, int]] = []
    browser_page.on("response", lambda r: responses.append((r.url, r.status)))
    identifier = None
    try:
        log_in(browser_page, f"{server}/login?next=/map/command%3Ftiles%3Dtrue", "tile_watch")
        browser_page.wait_for_function(
            f"gridgis.command?.refreshes > 0 && gridgis.command.live "
            f"&& gridgis.command.props.has('{grid}')", timeout=15_000)
        assert browser_page.evaluate("typeof gridgis.layers.grids.setFeatureStyle") \
            == "function"
        tiles = [status for url, status in responses if "/tiles/grids/" in url]
        assert tiles and set(tiles) <= {200, 204}
        assert not [url for url, _ in responses if "/api/grids?" in url]  # no GeoJSON grids
        identifier = issue_committed(engine, grid)
        browser_page.wait_for_function(
            f"gridgis.command.colourOf('{grid}') === '#f1c40f'", timeout=10_000)
        browser_page.wait_for_timeout(1000)
        browser_page.screenshot(path=output_dir / "command-tiles.png")
    finally:
        if identifier:
            delete_warning(engine, identifier)


def test_pages_run_under_their_content_security_policy(server: str, browser_page: Page,
                                                       engine: Engine) -> None:
    """Every page works with its CSP enforced: scripts and styles only from gridgis, no
    eval; a violation would be a console error."""
    from gridgis import auth

    with Session(engine) as session:
        auth.add_user(session, "csp_admin", "admin", "correct horse battery", [])
        session.commit()
    assert browser_page.context.browser is not None
    strict = browser_page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    page = strict.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        log_in(page, f"{server}/login?next=/map/command", "csp_admin")
        page.wait_for_selector(".gridgis-figure", timeout=15_000)  # the live state arrived
        page.wait_for_selector("path.leaflet-interactive, canvas", timeout=15_000)
        for path, ready in (("/map/planner", ".gridgis-planner button"),
                            ("/map/grid", "#gridgis-checklist[data-ready=true]"),
                            ("/docs", ".swagger-ui")):
            page.goto(f"{server}{path}")
            page.wait_for_selector(ready, timeout=15_000)
        page.wait_for_timeout(500)
        assert [e for e in errors if "Content Security Policy" in e or "CSP" in e] == []
        assert errors == []
    finally:
        strict.close()
