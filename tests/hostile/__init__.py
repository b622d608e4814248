"""Hostile input: named corpora of bad geometries, tracks and CAP messages (issue 9)."""
