"""The planner's page: the grids and community outlines, the folium Draw tools, and a panel
to work a changeset (``static/planner.js``): operations drawn on the map, validation
findings drawn where they are, the impact preview, publishing. Data from the API only."""

import folium
from branca.element import MacroElement, Template
from folium.plugins import Draw

from gridgis.maps import assets, i18n
from gridgis.maps.command import DEFAULT_CENTRE


class PlannerApp(MacroElement):
    """The changeset panel beside the map, and ``gridgis.plannerPage`` started on both."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <aside id="gridgis-planner" class="gridgis-legend gridgis-planner"></aside>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gridgis.plannerPage({{ this.map_name }}, {{ this.drawn_name }},
                            document.getElementById("gridgis-planner"), {{ this.api|tojson }});
        {% endmacro %}
    """)

    def __init__(self, map_name: str, drawn_name: str, api: str):
        super().__init__()
        self.map_name, self.drawn_name, self.api = map_name, drawn_name, api


def build_planner_page(*, basemap_url: str | None, basemap_attribution: str = "",
                       api: str = "/api", lang: str = "zh") -> folium.Map:
    """Return the planner's page; grids and everything else come from ``api`` at run time."""
    m = folium.Map(location=DEFAULT_CENTRE, zoom_start=11, tiles=None, control_scale=True)
    if basemap_url:
        folium.TileLayer(tiles=basemap_url, attr=basemap_attribution or "basemap",
                         name="底图").add_to(m)
    drawn = folium.FeatureGroup(name="绘制", control=False).add_to(m)
    Draw(feature_group=drawn, position="topleft",
         draw_options={"polygon": {"allowIntersection": True, "showArea": True},
                       "polyline": True, "rectangle": False, "circle": False,
                       "circlemarker": False, "marker": False},
         edit_options={"edit": False, "remove": True}).add_to(m)
    m.get_root().header.add_child(folium.Element(  # type: ignore[attr-defined]
        f"<title>{i18n.words(lang)['p_title']} · gridgis</title>" + i18n.words_script(lang)
        + f'<script src="{assets.OWN}/planner.js"></script>'), name="gridgis_planner")
    m.add_child(PlannerApp(m.get_name(), drawn.get_name(), api))
    assets.add_page_assets(m)
    assets.localise(m)
    return m
