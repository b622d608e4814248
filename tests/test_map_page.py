"""The command-centre page as HTML: every asset it names is local and served."""

import json
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gridgis.maps import assets, command

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def log_in_page(client: TestClient, login: Callable[..., dict[str, str]]) -> None:
    """Log the test client in through the form, as a person would (a session cookie)."""
    login("officer", "command")
    answer = client.post("/login", data={"username": "officer",
                                         "password": "correct horse battery"},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/map/command"


def test_page_needs_a_login(client: TestClient) -> None:
    answer = client.get("/map/command", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/map/command"
    form = client.get("/login?next=/map/command").text
    assert [u for u in ASSET.findall(form) if not u.startswith("/")] == []


def test_wrong_password_shows_the_form_again(client: TestClient,
                                             login: Callable[..., dict[str, str]]) -> None:
    login("officer2", "command")
    answer = client.post("/login", data={"username": "officer2", "password": "wrong!"})
    assert answer.status_code == 401 and "登录失败" in answer.text
    assert "gridgis_session" not in answer.cookies


def test_no_open_redirect(client: TestClient, login: Callable[..., dict[str, str]]) -> None:
    login("officer3", "command")
    answer = client.post("/login", data={"username": "officer3",
                                         "password": "correct horse battery",
                                         "next": "//evil.example/"}, follow_redirects=False)
    assert answer.headers["location"] == "/map/command"


def test_cookie_changes_need_the_csrf_header(client: TestClient,
                                            login: Callable[..., dict[str, str]]) -> None:
    log_in_page(client, login)
    assert client.get("/api/grids?limit=1").status_code == 200  # reads with the cookie
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert client.get("/api/grids?limit=1").status_code == 401  # the token is revoked


def test_every_asset_url_is_local_and_served(client: TestClient,
                                             login: Callable[..., dict[str, str]]) -> None:
    log_in_page(client, login)
    page = client.get("/map/command")
    assert page.status_code == 200
    urls = set(ASSET.findall(page.text))
    assert any("leaflet.js" in u for u in urls) and any("noto-sans-sc" in u for u in urls)
    assert [u for u in urls if not u.startswith("/")] == []
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "cdn.jsdelivr" not in page.text and "cdnjs" not in page.text


def test_page_reads_layers_from_the_api(client: TestClient,
                                        login: Callable[..., dict[str, str]]) -> None:
    log_in_page(client, login)
    page = client.get("/map/command").text
    for source in ("/api/grids?", "/api/admin-units?level=community", "/api/stations?",
                   "/api/shelters?"):
        assert source in page


def test_basemap_is_a_setting() -> None:
    without = command.build_command_map(basemap_url=None)
    html = without.get_root().render()
    assert "tile.openstreetmap" not in html and "L.tileLayer" not in html
    with_tiles = command.build_command_map(basemap_url="/tiles/base/{z}/{x}/{y}.png")
    assert "/tiles/base/{z}/{x}/{y}.png" in with_tiles.get_root().render()


def test_unknown_folium_asset_is_refused() -> None:
    import folium
    import pytest

    m = folium.Map(tiles=None)
    m.default_js = [*m.default_js, ("mystery", "https://example.invalid/mystery.js")]
    with pytest.raises(assets.UnknownAsset, match="mystery"):
        assets.localise(m)


def test_pages_speak_chinese_by_default_and_english_on_request(
        client: TestClient, login: Callable[..., dict[str, str]]) -> None:
    from gridgis.maps import i18n

    assert set(i18n.TEXT["zh"]) == set(i18n.TEXT["en"])  # every word in every language
    log_in_page(client, login)
    def words(path: str) -> dict[str, str]:
        page = client.get(path).text
        found = re.search(r"window\.gridgis\.t = (\{.*?\});", page, re.S)
        assert found, path
        return dict(json.loads(found.group(1)))

    assert words("/map/command") == i18n.TEXT["zh"]
    assert words("/map/command?lang=en")["view"] == "Colour by"
    assert words("/map/grid") == i18n.TEXT["zh"]  # the grid head's pages too
    assert words("/map/planner?lang=en")["p_publish"] == "Publish"  # and the planner's
    assert words("/map/grid/440402100001001?lang=en")["c_acknowledge"] == \
        "Acknowledge the warning"
    assert client.get("/map/command?lang=fr").status_code == 422


def test_every_page_serves_its_assets_locally(client: TestClient,
                                              login: Callable[..., dict[str, str]]) -> None:
    """The planner's, the grid head's and the vector-tile command pages too."""
    log_in_page(client, login)
    for path in ("/map/planner", "/map/grid", "/map/grid/440402100001001",
                 "/map/command?tiles=true"):
        page = client.get(path)
        assert page.status_code == 200, path
        urls = set(ASSET.findall(page.text))
        assert urls and [u for u in urls if not u.startswith("/")] == [], path
        for url in urls:
            assert client.get(url).status_code == 200, (path, url)


def test_the_log_in_form_follows_the_pages_language(client: TestClient) -> None:
    english = client.get("/map/planner?lang=en", follow_redirects=True)
    assert "Username" in english.text and 'lang="en"' in english.text
    chinese = client.get("/map/planner", follow_redirects=True)
    assert "用户名" in chinese.text and "Username" not in chinese.text


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    from gridgis.headers import policy

    for path in ("/health", "/login", "/api/grids"):
        answer = client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "access-control-allow-origin" not in answer.headers  # no CORS
    assert "img-src 'self' data: blob:;" in policy(None)
    assert "https://*.tiles.example.org" in policy("https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    assert " http://data.example.org;" in policy("http://data.example.org/{z}/{x}/{y}.png")


def test_cors_answers_only_the_origins_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridgis.main import create_app
    from gridgis.settings import get_settings

    monkeypatch.setenv("GRIDGIS_CORS_ORIGINS", '["https://duty.example.gov.cn"]')
    get_settings.cache_clear()
    try:
        client = TestClient(create_app())
        preflight = {"Access-Control-Request-Method": "PATCH",
                     "Access-Control-Request-Headers": "authorization,if-match"}
        allowed = client.options("/api/checklists/items/1", headers={
            "Origin": "https://duty.example.gov.cn", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://duty.example.gov.cn"
        assert "access-control-allow-credentials" not in allowed.headers  # no cookies
        other = client.options("/api/checklists/items/1",
                               headers={"Origin": "https://evil.example", **preflight})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        answer = client.get("/health", headers={"Origin": "https://duty.example.gov.cn"})
        assert answer.headers["access-control-allow-origin"] == "https://duty.example.gov.cn"
        assert "ETag" in answer.headers["access-control-expose-headers"]
    finally:
        get_settings.cache_clear()
