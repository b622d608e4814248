"""Warnings in, hazard areas, targeting, delivery, acknowledgement, checklists."""
