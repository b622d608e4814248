"""gridgis: grid management and typhoon emergency response on PostGIS."""

__version__ = "0.1.0"
