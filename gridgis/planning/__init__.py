"""Boundary planning: changesets of grid operations, validated, previewed and published."""
