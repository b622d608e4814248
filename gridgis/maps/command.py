"""The command-centre page: the territory's grids by community, stations and shelters.

A pure builder: it gets the territory's bounds and the settings and returns a ``folium.Map``.
Data reaches the page from the HTTP API at run time (folium's Realtime layer), never
embedded, so the page stays small and shows what the database holds now.
"""

import json
from typing import Any

import folium
from branca.element import MacroElement, Template
from folium.plugins import Realtime, VectorGridProtobuf
from folium.utilities import JsCode

from gridgis.maps import assets, i18n

# Styles are data: community colours, station levels, shelters.
STATION_STYLES = {
    "centre": {"label": "党群服务中心", "color": "#c0392b", "radius": 6},
    "station": {"label": "党群服务站", "color": "#e67e22", "radius": 4},
    "post": {"label": "楼宇党群驿站", "color": "#f1c40f", "radius": 3},
}
SHELTER_STYLE = {"label": "避护场所", "color": "#16a085", "radius": 6}
REFRESH_MS = 60_000
DEFAULT_CENTRE = (22.6, 113.5)  # lat, lon: the Pearl River Delta
GRID_PAGE = 5000

# Grids are coloured by the live state and the view the operator picks (static/command.js).
GRID_STYLE_JS = "(feature) => gridgis.gridStyle(feature)"
# Names come from boundary files and forms: tooltips show them escaped (gridgis.js), never
# as HTML.
GRID_EACH_JS = """
(feature, layer) => {
  const esc = gridgis.escape;
  const p = feature.properties;
  layer.bindTooltip(`${esc(p.code)}<br>${esc(p.name)}`, {sticky: true});
  layer.bindPopup(() => gridgis.gridPopup(feature));
}
"""
COMMUNITY_STYLE_JS = "(feature) => ({color: '#222', weight: 2, fill: false})"
# Community names on the map itself (no base map needed), shown from zoom 12 (command.js).
LABEL_JS = """
(feature, layer) => layer.bindTooltip(gridgis.escape(feature.properties.name),
    {permanent: true, direction: "center", className: "gridgis-label gridgis-unit-label"})
"""
STREET_STYLE_JS = "(feature) => ({color: '#000', weight: 3.5, fill: false, dashArray: '8 4'})"
POINT_JS = """
(feature, latlng) => {
  const styles = %(styles)s;
  const esc = gridgis.escape;
  const s = styles[feature.properties.%(key)s] || styles["*"];
  const marker = L.circleMarker(latlng, {radius: s.radius, color: "#fff", weight: 1,
                                         fillColor: s.color, fillOpacity: 0.95});
  marker.bindTooltip(%(tooltip)s);
  return marker;
}
"""


# Vector tiles (``/tiles/{layer}/{z}/{x}/{y}.pbf``, ST_AsMVT): grids styled by the live state,
# feature id the grid code so a changed grid is restyled alone; buildings from zoom 15.
GRID_TILE_OPTIONS = """{
  rendererFactory: L.canvas.tile, interactive: true, maxNativeZoom: 18,
  getFeatureId: (f) => f.properties.code,
  vectorTileLayerStyles: {grids: (properties) => gridgis.gridStyle({properties})}
}"""
BUILDING_TILE_OPTIONS = """{
  rendererFactory: L.canvas.tile, interactive: false, minZoom: 15, maxNativeZoom: 18,
  vectorTileLayerStyles: {buildings: {weight: 0.5, color: "#555", fill: true,
                                      fillColor: "#bdc3c7", fillOpacity: 0.6, radius: 2}}
}"""


def _tiles(layer: str, name: str, options: str) -> VectorGridProtobuf:
    tiles = VectorGridProtobuf(f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.pbf", name, options)
    return tiles


def _layer(source: str, name: str, interval: int = REFRESH_MS, **options: Any) -> Realtime:
    layer = Realtime(source, get_feature_id=JsCode("(f) => f.id"), interval=interval,
                     remove_missing=True, **options)
    layer.layer_name = name
    return layer


class LayerRegistry(MacroElement):
    """Expose the live layers as ``window.gridgis.layers``; fit the view to the first one."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        window.gridgis.map = {{ this.map_name }};
        window.gridgis.layers = {
        {%- for key, name in this.layers.items() %}{{ key|tojson }}: {{ name }},{% endfor %}
        };
        {% for key, name in this.layers.items() %}{% if loop.first %}
        {{ name }}.once("update", () => {
            const bounds = {{ name }}.getBounds();
            if (bounds.isValid()) { {{ this.map_name }}.fitBounds(bounds); }
        });
        {% endif %}{% endfor %}
        {% endmacro %}
    """)

    def __init__(self, map_name: str, layers: dict[str, str]):
        super().__init__()
        self.map_name = map_name
        self.layers = layers


def legend_html(t: dict[str, str]) -> str:
    """Return the legend's HTML: station levels and shelters (grid colours: the panel)."""
    rows = [f'<div><i style="background:{s["color"]}"></i>{s["label"]}</div>'
            for s in [*STATION_STYLES.values(), SHELTER_STYLE]]
    return ('<div class="gridgis-legend leaflet-control" style="position:absolute;'
            f'bottom:48px;left:10px;z-index:800"><div class="gridgis-title">{t["legend"]}'
            '</div>' + "".join(rows) + "</div>")


class CommandApp(MacroElement):
    """The side panel (view picker, legend of the view, the territory's figures) and the
    live state started on the map (``gridgis.commandPage``), with the page's words."""

    _template = Template("""
        {% macro header(this, kwargs) %}
        <script>window.gridgis = window.gridgis || {};
        window.gridgis.t = {{ this.words|tojson }};</script>
        {% endmacro %}
        {% macro html(this, kwargs) %}
        <aside id="gridgis-panel" class="gridgis-legend gridgis-command-panel"></aside>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gridgis.commandPage({{ this.map_name }}, document.getElementById("gridgis-panel"),
                            {{ this.api|tojson }});
        {% endmacro %}
    """)

    def __init__(self, map_name: str, api: str, words: dict[str, str]):
        super().__init__()
        self.map_name, self.api, self.words = map_name, api, words


def dead_letter_panel(api: str) -> str:
    """Return the dead-letter panel and the script that keeps it current (gridgis.js)."""
    return ('<div id="gridgis-dead-letters" class="gridgis-legend gridgis-dead"></div>'
            "<script>document.addEventListener('DOMContentLoaded', () => "
            "gridgis.watchDeadLetters(document.getElementById('gridgis-dead-letters'), "
            f"{json.dumps(api + '/dead-letters?limit=500')}));</script>")


def build_command_map(*, basemap_url: str | None, basemap_attribution: str = "",
                      api: str = "/api", lang: str = "zh",
                      vector_tiles: bool = False) -> folium.Map:
    """Return the command-centre map in ``lang``; it opens on the Pearl River Delta and then
    fits the view to the communities once they have arrived from ``api``. With
    ``vector_tiles`` (a city: tens of thousands of grids) grids come as vector tiles drawn
    on canvas, not as one GeoJSON document."""
    t = i18n.words(lang)
    # minZoom set on the map itself: else Leaflet takes the buildings layer's (15) for it
    m = folium.Map(location=DEFAULT_CENTRE, zoom_start=9, tiles=None, control_scale=True,
                   prefer_canvas=True, minZoom=0)
    if basemap_url:
        folium.TileLayer(tiles=basemap_url, attr=basemap_attribution or "basemap",
                         name="底图", overlay=False).add_to(m)

    grids = (_tiles("grids", t["grids"], GRID_TILE_OPTIONS) if vector_tiles else
             _layer(f"{api}/grids?limit={GRID_PAGE}", t["grids"], interval=5 * REFRESH_MS,
                    style=JsCode(GRID_STYLE_JS), on_each_feature=JsCode(GRID_EACH_JS)))
    buildings = _tiles("buildings", t["buildings"], BUILDING_TILE_OPTIONS)
    communities = _layer(f"{api}/admin-units?level=community&limit={GRID_PAGE}",
                         t["communities"], interval=5 * REFRESH_MS,
                         style=JsCode(COMMUNITY_STYLE_JS), on_each_feature=JsCode(LABEL_JS))
    streets = _layer(f"{api}/admin-units?level=street&limit={GRID_PAGE}", t["streets"],
                     interval=5 * REFRESH_MS, style=JsCode(STREET_STYLE_JS))
    stations = _layer(f"{api}/stations?limit={GRID_PAGE}", t["stations"],
                      point_to_layer=JsCode(POINT_JS % {
                          "styles": json.dumps({**STATION_STYLES, "*": STATION_STYLES["post"]}),
                          "key": "level", "tooltip": "esc(feature.properties.name)"}))
    shelters = _layer(f"{api}/shelters?limit={GRID_PAGE}", t["shelters"],
                      point_to_layer=JsCode(POINT_JS % {
                          "styles": json.dumps({"*": SHELTER_STYLE}), "key": "kind",
                          "tooltip": "`${esc(feature.properties.name)}<br>"
                                     "${esc(feature.properties.occupancy)}/"
                                     "${esc(feature.properties.capacity)} 人`"}))
    # the first layer fits the view when it arrives
    layers = {"communities": communities, "grids": grids, "streets": streets,
              "buildings": buildings, "stations": stations, "shelters": shelters}
    for layer in layers.values():
        layer.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    m.get_root().html.add_child(folium.Element(legend_html(t)))  # type: ignore[attr-defined]
    m.get_root().html.add_child(folium.Element(dead_letter_panel(api)))  # type: ignore[attr-defined]
    m.add_child(LayerRegistry(m.get_name(), {k: v.get_name() for k, v in layers.items()}))
    m.add_child(CommandApp(m.get_name(), api, t))
    m.get_root().header.add_child(folium.Element(  # type: ignore[attr-defined]
        f'<script src="{assets.OWN}/command.js"></script>'), name="gridgis_command")
    assets.add_page_assets(m)
    assets.localise(m)
    return m
