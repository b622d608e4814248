"""Spatial layers: admin units, grids, buildings, stations, shelters, residents."""
