"""The command-centre page as HTML: every asset it names is local and served."""

import re

from fastapi.testclient import TestClient

from gridgis.maps import assets, command

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_every_asset_url_is_local_and_served(client: TestClient) -> None:
    page = client.get("/map/command")
    assert page.status_code == 200
    urls = set(ASSET.findall(page.text))
    assert any("leaflet.js" in u for u in urls) and any("noto-sans-sc" in u for u in urls)
    assert [u for u in urls if not u.startswith("/")] == []
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "cdn.jsdelivr" not in page.text and "cdnjs" not in page.text


def test_page_reads_layers_from_the_api(client: TestClient) -> None:
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
