"""Deterministic demo data: territory boundaries (district, streets, communities, grids)."""
