-- The buildings a publish would move, as GeoJSON features for the preview map (at most
-- 5,000).
WITH p AS (
    SELECT code, action, grid_id, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
    FROM unnest(CAST(:codes AS text[]), CAST(:actions AS text[]), CAST(:grid_ids AS int[]),
                CAST(:wkbs AS bytea[])) AS t(code, action, grid_id, wkb)
), moving AS (
    SELECT b.code, b.location, og.code AS from_grid,
           (SELECT p.code FROM p WHERE p.action <> 'retire' AND ST_Covers(p.geom, b.location)
            ORDER BY p.code LIMIT 1) AS to_grid
    FROM building b JOIN grid og ON og.id = b.grid_id
    WHERE b.retired_at IS NULL
      AND (b.grid_id IN (SELECT grid_id FROM p WHERE grid_id IS NOT NULL)
           OR EXISTS (SELECT 1 FROM p WHERE p.action <> 'retire'
                                        AND ST_Covers(p.geom, b.location)))
)
SELECT coalesce(json_agg(json_build_object(
    'type', 'Feature', 'geometry', CAST(ST_AsGeoJSON(location, 7) AS json),
    'properties', json_build_object('building', code, 'from_grid', from_grid,
                                    'to_grid', to_grid))), '[]')
FROM (SELECT * FROM moving WHERE to_grid IS DISTINCT FROM from_grid LIMIT 5000) m
