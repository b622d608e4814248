-- Findings on the proposed grids (:codes, :actions, :grid_ids, :community_ids, :wkbs as
-- parallel arrays; retired ones have no geometry) against the live territory: outside the
-- community, overlapping another grid, a new gap in a community, too small or too large,
-- too few or too many households, buildings left in no grid. Areas are square metres on
-- the spheroid; :tolerance square metres are digitising noise.
WITH p AS (
    SELECT code, action, grid_id, community_id, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
    FROM unnest(CAST(:codes AS text[]), CAST(:actions AS text[]), CAST(:grid_ids AS int[]),
                CAST(:community_ids AS int[]), CAST(:wkbs AS bytea[]))
         AS t(code, action, grid_id, community_id, wkb)
), new_state AS (
    SELECT g.code, g.community_id, g.boundary AS geom FROM grid g
    WHERE g.retired_at IS NULL
      AND g.id NOT IN (SELECT grid_id FROM p WHERE grid_id IS NOT NULL)
    UNION ALL
    SELECT code, community_id, geom FROM p WHERE action <> 'retire'
), empty AS (SELECT ST_GeomFromText('POLYGON EMPTY', 4326) AS geom)
SELECT 'community' AS check, p.code AS grid,
       round(ST_Area(CAST(o.outside AS geography)))::text || ' m² outside community '
       || cu.code AS message, ST_AsGeoJSON(o.outside) AS geometry
FROM p
JOIN admin_unit cu ON cu.id = p.community_id
CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(p.geom, cu.boundary), 3)
                    AS outside) o
WHERE p.action <> 'retire' AND ST_Area(CAST(o.outside AS geography)) > :tolerance
UNION ALL
SELECT 'overlap', p.code,
       'overlaps grid ' || n.code || ' by '
       || round(ST_Area(CAST(x.shared AS geography)))::text || ' m²',
       ST_AsGeoJSON(x.shared)
FROM p
JOIN new_state n ON n.code <> p.code AND n.geom && p.geom AND ST_Intersects(n.geom, p.geom)
CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Intersection(n.geom, p.geom), 3)
                    AS shared) x
WHERE p.action <> 'retire' AND ST_Area(CAST(x.shared AS geography)) > :tolerance
  AND (n.code > p.code OR n.code NOT IN (SELECT code FROM p))  -- a proposed pair once
UNION ALL
SELECT 'gap', cu.code,
       round(ST_Area(CAST(x.gap AS geography)))::text || ' m² of community ' || cu.code
       || ' would lie in no grid', ST_AsGeoJSON(x.gap)
FROM (SELECT DISTINCT community_id FROM p) c
JOIN admin_unit cu ON cu.id = c.community_id
CROSS JOIN empty
CROSS JOIN LATERAL (SELECT ST_Union(g.boundary) AS geom FROM grid g
                    WHERE g.community_id = cu.id AND g.retired_at IS NULL) before
CROSS JOIN LATERAL (SELECT ST_Union(n.geom) AS geom FROM new_state n
                    WHERE n.community_id = cu.id) after
CROSS JOIN LATERAL (SELECT ST_CollectionExtract(ST_Difference(
    ST_Difference(cu.boundary, coalesce(after.geom, empty.geom)),
    ST_Difference(cu.boundary, coalesce(before.geom, empty.geom))), 3) AS gap) x
WHERE ST_Area(CAST(x.gap AS geography)) > :tolerance
UNION ALL
SELECT 'size', p.code,
       round(a.m2)::text || ' m², outside ' || round(:smallest)::text || '..'
       || round(:largest)::text || ' m²', NULL
FROM p CROSS JOIN LATERAL (SELECT ST_Area(CAST(p.geom AS geography)) AS m2) a
WHERE p.action <> 'retire' AND (a.m2 < :smallest OR a.m2 > :largest)
UNION ALL
SELECT 'households', p.code,
       h.households::text || ' households, outside ' || :fewest || '..' || :most, NULL
FROM p CROSS JOIN LATERAL (
    SELECT count(DISTINCT r.household_code) AS households
    FROM building b JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
    WHERE b.retired_at IS NULL AND ST_Covers(p.geom, b.location)) h
WHERE p.action <> 'retire' AND (h.households < :fewest OR h.households > :most)
UNION ALL
SELECT 'no_grid', min(og.code),
       count(*)::text || ' buildings would lie in no grid', ST_AsGeoJSON(ST_Collect(b.location))
FROM building b
JOIN grid og ON og.id = b.grid_id
WHERE b.retired_at IS NULL
  AND b.grid_id IN (SELECT grid_id FROM p WHERE grid_id IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM p WHERE p.action <> 'retire' AND ST_Covers(p.geom, b.location))
  AND NOT EXISTS (SELECT 1 FROM grid g WHERE g.retired_at IS NULL
                    AND g.id NOT IN (SELECT grid_id FROM p WHERE grid_id IS NOT NULL)
                    AND ST_Covers(g.boundary, b.location))
HAVING count(*) > 0
