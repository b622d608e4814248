"""Map pages built with folium; every asset they load is served by gridgis itself."""
