"""The grid head's page (网格长): the grid's open checklist on a phone.

A small map of the items above the list of them, most urgent first, each worked in one or
two taps (``static/checklist.js``). Items come from the checklist API, names and phones from
the audited residents API (only the head's own grids answer with them); a change is a PATCH
with the version read, and a stale one shows the item as it now is.
"""

import folium
from branca.element import MacroElement, Template

from gridgis.maps import assets, i18n

MAP_HEIGHT = "38vh"  # the list below gets the rest of a phone's screen


class ChecklistApp(MacroElement):
    """The list under the map, and ``gridgis.checklistPage`` started on both."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <main id="gridgis-checklist" class="gridgis-phone" aria-live="polite">
          <p>正在载入转移清单…</p></main>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gridgis.checklistPage({{ this.map_name }}, document.getElementById("gridgis-checklist"),
                              {{ this.api|tojson }}, {{ this.grid|tojson }});
        {% endmacro %}
    """)

    def __init__(self, map_name: str, api: str, grid: str | None):
        super().__init__()
        self.map_name = map_name
        self.api = api
        self.grid = grid


def build_grid_head_page(*, basemap_url: str | None, basemap_attribution: str = "",
                         api: str = "/api", grid: str | None = None,
                         lang: str = "zh") -> folium.Map:
    """Return the grid head's checklist page (of one ``grid``: with its buildings, nearest
    shelters and alert to acknowledge); its data comes from ``api`` at run time."""
    m = folium.Map(location=(22.6, 113.5), zoom_start=14, tiles=None, height=MAP_HEIGHT,
                   control_scale=True)
    if basemap_url:
        folium.TileLayer(tiles=basemap_url, attr=basemap_attribution or "basemap",
                         name="底图").add_to(m)
    m.get_root().header.add_child(folium.Element(  # type: ignore[attr-defined]
        f"<title>{i18n.words(lang)['c_checklist']} · gridgis</title>"
        + i18n.words_script(lang)
        + f'<script src="{assets.OWN}/checklist.js"></script>'), name="gridgis_checklist")
    m.add_child(ChecklistApp(m.get_name(), api, grid))
    assets.add_page_assets(m)
    assets.localise(m)
    return m
