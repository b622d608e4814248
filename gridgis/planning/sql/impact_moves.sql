-- Buildings whose grid a publish would change, with their residents and households, by the
-- grid they leave and the grid they join (NULL: none; validation calls that a gap).
WITH p AS (
    SELECT code, action, grid_id, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
    FROM unnest(CAST(:codes AS text[]), CAST(:actions AS text[]), CAST(:grid_ids AS int[]),
                CAST(:wkbs AS bytea[])) AS t(code, action, grid_id, wkb)
), touched AS (
    SELECT grid_id AS id FROM p WHERE grid_id IS NOT NULL
), moving AS (
    SELECT b.id, og.code AS from_grid, coalesce(
        (SELECT p.code FROM p WHERE p.action <> 'retire' AND ST_Covers(p.geom, b.location)
         ORDER BY p.code LIMIT 1),
        (SELECT g.code FROM grid g WHERE g.retired_at IS NULL
           AND g.id NOT IN (SELECT id FROM touched) AND ST_Covers(g.boundary, b.location)
         ORDER BY g.id LIMIT 1)) AS to_grid
    FROM building b
    JOIN grid og ON og.id = b.grid_id
    WHERE b.retired_at IS NULL
      AND (b.grid_id IN (SELECT id FROM touched)
           OR EXISTS (SELECT 1 FROM p WHERE p.action <> 'retire'
                                        AND ST_Covers(p.geom, b.location)))
)
SELECT m.from_grid, m.to_grid, count(DISTINCT m.id)::int AS buildings,
       count(r.id)::int AS residents, count(DISTINCT r.household_code)::int AS households
FROM moving m
LEFT JOIN resident r ON r.building_id = m.id AND r.moved_out_at IS NULL
WHERE m.to_grid IS DISTINCT FROM m.from_grid
GROUP BY m.from_grid, m.to_grid
ORDER BY m.from_grid, m.to_grid
