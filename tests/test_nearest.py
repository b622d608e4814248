"""The nearest shelters found in memory (a k-d tree of unit vectors) are those PostGIS finds,
at the distances PostGIS measures on its sphere."""

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridgis.alerts import nearest

# For some buildings of the demo territory: every shelter meeting the needs, nearest first
# by PostGIS's own distance on the sphere.
RANKED_SQL = text("""
SELECT b.id AS building_id,
       array_agg(s.id ORDER BY ST_Distance(CAST(s.location AS geography),
                                           CAST(b.location AS geography), false), s.id)
           AS shelters,
       array_agg(ST_Distance(CAST(s.location AS geography), CAST(b.location AS geography),
                             false)
                 ORDER BY ST_Distance(CAST(s.location AS geography),
                                      CAST(b.location AS geography), false), s.id) AS metres
FROM (SELECT id, location FROM building ORDER BY id LIMIT 40) b
CROSS JOIN shelter s
WHERE s.retired_at IS NULL AND (NOT :wheelchair OR s.wheelchair_access)
  AND (NOT :medical OR s.medical)
GROUP BY b.id ORDER BY b.id
""")


def test_metres_are_postgis_metres_on_the_sphere(session: Session) -> None:
    pairs = [((113.5, 22.7), (113.6, 22.8)), ((0.0, 0.0), (0.0, 1.0)),
             ((113.5, 22.7), (-66.5, -22.7)), ((121.47, 31.23), (116.40, 39.90))]
    for (lon1, lat1), (lon2, lat2) in pairs:
        expected = session.execute(text(
            "SELECT ST_Distance(CAST(ST_MakePoint(:a, :b) AS geography), "
            "CAST(ST_MakePoint(:c, :d) AS geography), false)"),
            {"a": lon1, "b": lat1, "c": lon2, "d": lat2}).scalar_one()
        points = nearest.unit_vectors(np.array([lon1, lon2]), np.array([lat1, lat2]))
        chord = np.linalg.norm(points[0] - points[1])
        assert float(nearest.chord_to_metres(np.array([chord]))[0]) == pytest.approx(
            expected, rel=1e-9, abs=1e-6)


# Shelters of every kind of needs among the demo territory's buildings.
MORE_SHELTERS_SQL = text("""
INSERT INTO shelter (code, name, kind, community_id, capacity, occupancy, location,
                     wheelchair_access, medical)
SELECT 'NEAR-' || b.id, '测试' || b.id, 'school', g.community_id, 100, 0,
       ST_Translate(b.location, 0.001 * (b.id % 7), -0.001 * (b.id % 5)),
       b.id % 2 = 0, b.id % 3 = 0
FROM (SELECT id, grid_id, location FROM building ORDER BY id DESC LIMIT 60) b
JOIN grid g ON g.id = b.grid_id
""")


@pytest.mark.parametrize(("wheelchair", "medical"), [(False, False), (True, False),
                                                     (False, True), (True, True)])
def test_the_k_nearest_meeting_the_needs_are_those_postgis_ranks_first(
        session: Session, wheelchair: bool, medical: bool) -> None:
    session.execute(MORE_SHELTERS_SQL)
    ranked = session.execute(RANKED_SQL, {"wheelchair": wheelchair,
                                          "medical": medical}).all()
    assert ranked, "the demo territory has shelters meeting these needs"
    shelters = nearest.Shelters.load(session)
    buildings = [row.building_id for row in ranked]
    known, points = nearest.Places.of_buildings(session, sorted(buildings)).points_of(
        [*buildings, -1])
    assert known.tolist() == [True] * len(buildings) + [False]  # no building -1
    k = 6
    found = shelters.nearest(points, wheelchair, medical, k)
    for row, (ids, metres) in zip(ranked, found, strict=True):
        assert len(ids) == len(metres) == min(k, len(row.shelters))
        # The same shelters, unless two are as near as each other at the edge of the k.
        assert metres == pytest.approx(row.metres[:k], abs=0.01)
        assert set(ids) <= set(row.shelters[:k + 2])
        assert ids[0] == row.shelters[0] or metres[0] == pytest.approx(row.metres[1], abs=0.01)


def test_no_shelter_meeting_the_needs_gives_no_options(session: Session) -> None:
    session.execute(text("UPDATE shelter SET medical = false"))
    shelters = nearest.Shelters.load(session)
    point = nearest.unit_vectors(np.array([113.5]), np.array([22.7]))
    assert shelters.nearest(point, False, True, 6) == [([], [])]
    assert [len(found) for found in shelters.nearest(point, False, False, 6)[0]] == [6, 6]
