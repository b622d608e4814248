-- Stations and shelters whose grid (the grid holding their point) a publish would change.
WITH p AS (
    SELECT code, action, grid_id, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
    FROM unnest(CAST(:codes AS text[]), CAST(:actions AS text[]), CAST(:grid_ids AS int[]),
                CAST(:wkbs AS bytea[])) AS t(code, action, grid_id, wkb)
), places AS (
    SELECT 'station' AS kind, code, name, location FROM station WHERE retired_at IS NULL
    UNION ALL
    SELECT 'shelter', code, name, location FROM shelter WHERE retired_at IS NULL
), near AS (
    SELECT pl.* FROM places pl
    WHERE EXISTS (SELECT 1 FROM p WHERE p.geom && pl.location)
       OR EXISTS (SELECT 1 FROM grid g JOIN p ON p.grid_id = g.id
                  WHERE ST_Covers(g.boundary, pl.location))
)
SELECT n.kind, n.code, n.name, f.code AS from_grid, t.code AS to_grid
FROM near n
LEFT JOIN LATERAL (SELECT g.code FROM grid g WHERE g.retired_at IS NULL
                   AND ST_Covers(g.boundary, n.location) ORDER BY g.id LIMIT 1) f ON true
LEFT JOIN LATERAL (
    SELECT code FROM (
        SELECT p.code, 0 AS rank FROM p
        WHERE p.action <> 'retire' AND ST_Covers(p.geom, n.location)
        UNION ALL
        SELECT g.code, 1 FROM grid g WHERE g.retired_at IS NULL
          AND g.id NOT IN (SELECT grid_id FROM p WHERE grid_id IS NOT NULL)
          AND ST_Covers(g.boundary, n.location)) c
    ORDER BY rank, code LIMIT 1) t ON true
WHERE f.code IS DISTINCT FROM t.code
ORDER BY n.kind, n.code
