"""Local copies of the browser libraries folium would fetch from public CDNs.

The libraries come from the npm registry at set-up (``assets/package.json``, ``make assets``)
and are served under ``/static/vendor``; gridgis's own files are under ``/static/gridgis``.
``localise`` rewrites every script and stylesheet of a folium figure to these URLs and
refuses to render one it does not know, so a page never reaches for the internet.
"""

from pathlib import Path

import folium
from branca.element import Element

VENDOR = "/static/vendor"
OWN = "/static/gridgis"
OWN_DIR = Path(__file__).parent / "static"
# npm packages served under /static/vendor/<package>/ (installed from assets/package.json).
PACKAGES = ("leaflet", "jquery", "bootstrap", "leaflet.awesome-markers", "leaflet-realtime",
            "leaflet.vectorgrid", "leaflet-draw", "@fortawesome/fontawesome-free",
            "@fontsource/noto-sans-sc", "swagger-ui-dist")
# Served fonts: wall screens and kiosks often lack CJK fonts. Loaded by unicode-range slices.
FONT_CSS = (f"{VENDOR}/@fontsource/noto-sans-sc/400.css",
            f"{VENDOR}/@fontsource/noto-sans-sc/700.css")
# folium's asset names -> local URL; None drops an asset our pages do not use.
LOCAL: dict[str, str | None] = {
    "leaflet": f"{VENDOR}/leaflet/dist/leaflet.js",
    "jquery": f"{VENDOR}/jquery/dist/jquery.min.js",
    "bootstrap": f"{VENDOR}/bootstrap/dist/js/bootstrap.bundle.min.js",
    "awesome_markers": f"{VENDOR}/leaflet.awesome-markers/dist/leaflet.awesome-markers.min.js",
    "leaflet_css": f"{VENDOR}/leaflet/dist/leaflet.css",
    "bootstrap_css": f"{VENDOR}/bootstrap/dist/css/bootstrap.min.css",
    "glyphicons_css": None,  # Bootstrap 3 icons; our markers use Font Awesome
    "awesome_markers_font_css": f"{VENDOR}/@fortawesome/fontawesome-free/css/all.min.css",
    "awesome_markers_css": f"{VENDOR}/leaflet.awesome-markers/dist/leaflet.awesome-markers.css",
    "awesome_rotate_css": None,  # only for rotated markers, which we do not draw
    "Leaflet_Realtime_js": f"{VENDOR}/leaflet-realtime/dist/leaflet-realtime.min.js",
    "vectorGrid": f"{VENDOR}/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
    "leaflet_draw_js": f"{VENDOR}/leaflet-draw/dist/leaflet.draw.js",
    "leaflet_draw_css": f"{VENDOR}/leaflet-draw/dist/leaflet.draw.css",
}


class UnknownAsset(RuntimeError):
    """A folium element wants an asset gridgis does not serve (a fault of ours: 500)."""


def localise(element: Element) -> None:
    """Point every script and stylesheet of ``element`` and its children at local copies."""
    for attribute in ("default_js", "default_css"):
        assets = getattr(element, attribute, None)
        if assets:
            setattr(element, attribute, [(name, url) for name, url in map(_local, assets) if url])
    for child in element._children.values():
        localise(child)


def _local(asset: tuple[str, str]) -> tuple[str, str | None]:
    name, url = asset
    if url.startswith("/"):
        return name, url
    if name not in LOCAL:
        raise UnknownAsset(f"folium asset {name!r} ({url}) has no local copy; add it to "
                           f"assets/package.json and gridgis.maps.assets.LOCAL")
    return name, LOCAL[name]


def add_page_assets(m: folium.Map) -> None:
    """Link the served fonts, gridgis's stylesheet and icon into the page head."""
    links = [f'<link rel="stylesheet" href="{href}"/>' for href in FONT_CSS]
    links.append(f'<link rel="stylesheet" href="{OWN}/gridgis.css"/>')
    links.append(f'<link rel="icon" type="image/svg+xml" href="{OWN}/favicon.svg"/>')
    links.append(f'<script src="{OWN}/gridgis.js"></script>')
    m.get_root().header.add_child(  # type: ignore[attr-defined]
        Element("\n".join(links)), name="gridgis_assets"
    )
