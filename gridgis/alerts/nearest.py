"""The nearest shelters to buildings, in metres on the sphere, through a k-d tree in memory.

A checklist maker looks up the few nearest shelters meeting each household's needs for tens
of thousands of buildings at once (a hurricane over 2,000 grids: 48,000 places). One
PostGIS nearest-neighbour search per place took 2.3 s; the city's few thousand shelters fit
in a k-d tree (``scipy.spatial.cKDTree``) built in milliseconds, which answers them all in
tens of milliseconds.

Points go into the tree as unit vectors: the straight-line (chord) distance between two of
them orders them exactly as the great-circle distance does, so the k nearest in the tree
are the k nearest on the sphere. Metres are the great-circle distance on PostGIS's sphere
(``ST_Distance(geography, false)``, the radius PostGIS uses), so they agree with what the
database says of the same two points.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis import db

# The sphere of PostGIS's geography distances without the spheroid: WGS 84's mean radius
# (2a + b) / 3.
EARTH_RADIUS_M = 6371008.7714150598
SHELTERS_SQL = text("""
SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat, wheelchair_access, medical
FROM shelter WHERE retired_at IS NULL ORDER BY id
""")
# Three arrays in one row: tens of thousands of rows would cost more to read than the query.
BUILDINGS_SQL = text("""
SELECT coalesce(array_agg(b.id ORDER BY b.id), '{}') AS ids,
       coalesce(array_agg(ST_X(b.location) ORDER BY b.id), '{}') AS lon,
       coalesce(array_agg(ST_Y(b.location) ORDER BY b.id), '{}') AS lat
FROM building b WHERE b.id = ANY(CAST(:ids AS int[]))
""")


def unit_vectors(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return points (degrees) as unit vectors from the centre of the sphere, one per row."""
    lam, phi = np.radians(lon), np.radians(lat)
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


def chord_to_metres(chord: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the great-circle distance in metres of chords between unit vectors."""
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, chord / 2))


@dataclass
class Shelters:
    """The shelters in use, with a k-d tree per combination of needs (made when first asked)."""

    ids: NDArray[np.int64]
    points: NDArray[np.float64]
    wheelchair: NDArray[np.bool_]
    medical: NDArray[np.bool_]
    _trees: dict[tuple[bool, bool], tuple[cKDTree, NDArray[np.int64]]] = field(
        default_factory=dict, repr=False)

    @classmethod
    def load(cls, session: Session) -> "Shelters":
        """Read the shelters in use (as the caller's transaction sees them)."""
        rows = session.execute(SHELTERS_SQL).all()
        return cls(np.array([r.id for r in rows], dtype=np.int64),
                   unit_vectors(np.array([r.lon for r in rows], dtype=np.float64),
                                np.array([r.lat for r in rows], dtype=np.float64)),
                   np.array([r.wheelchair_access for r in rows], dtype=np.bool_),
                   np.array([r.medical for r in rows], dtype=np.bool_))

    def nearest(self, points: NDArray[np.float64], wheelchair: bool, medical: bool,
                k: int) -> list[tuple[list[int], list[float]]]:
        """Return, for each point (unit vectors), its ``k`` nearest shelters with wheelchair
        access and medical care where asked, nearest first: their ids and their metres."""
        tree, ids = self._tree(wheelchair, medical)
        k = min(k, len(ids))
        if k == 0 or len(points) == 0:
            return [([], []) for _ in range(len(points))]
        chords, found = tree.query(points, k=k)
        chords, found = chords.reshape(len(points), k), found.reshape(len(points), k)
        return list(zip(ids[found].tolist(), chord_to_metres(chords).tolist(), strict=True))

    def _tree(self, wheelchair: bool, medical: bool) -> tuple[cKDTree, NDArray[np.int64]]:
        key = (wheelchair, medical)
        if key not in self._trees:
            meets = (self.wheelchair | (not wheelchair)) & (self.medical | (not medical))
            self._trees[key] = (cKDTree(self.points[meets]), self.ids[meets])
        return self._trees[key]


@dataclass(frozen=True)
class Places:
    """Buildings' locations as unit vectors, looked up by building id."""

    ids: NDArray[np.int64]  # sorted
    points: NDArray[np.float64]

    @classmethod
    def of_buildings(cls, session: Session, building_ids: Sequence[int]) -> "Places":
        """Read the locations of the buildings ``building_ids``."""
        if not building_ids:
            return cls(np.empty(0, dtype=np.int64), np.empty((0, 3)))
        ids, lon, lat = session.execute(BUILDINGS_SQL, {
            "ids": db.array_literal(building_ids)}).one()
        return cls(np.array(ids, dtype=np.int64),
                   unit_vectors(np.array(lon, dtype=np.float64),
                                np.array(lat, dtype=np.float64)))

    def points_of(self, building_ids: Sequence[int]
                  ) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Return which of ``building_ids`` are known, and the unit vectors of those, in
        their order."""
        wanted = np.asarray(building_ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.ids, wanted), max(len(self.ids) - 1, 0))
        known = self.ids[at] == wanted if len(self.ids) else np.zeros(len(wanted), bool)
        return known, self.points[at[known]]
