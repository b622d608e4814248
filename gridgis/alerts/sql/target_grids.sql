-- The grids a warning reaches, in one pass over the GiST indexes: for each live grid the
-- highest tier whose area touches it, the share of the grid that area covers (areas on
-- geography, m²), the first time a time-stepped gale circle touches it (its gale ETA), and
-- the grid's kept totals. :warning_id; :min_share is the inclusion rule (0 = any overlap).
WITH area AS (
    SELECT tier, area,
           CASE tier WHEN 'hurricane' THEN 4 WHEN 'storm' THEN 3 WHEN 'gale' THEN 2
                     ELSE 1 END AS rank
    FROM warning_area
    WHERE warning_id = :warning_id AND valid_at IS NULL
), hit AS MATERIALIZED (  -- inlined, the share was computed three times a row (two filters)
    SELECT g.id AS grid_id, a.tier, a.rank,
           CASE WHEN ST_Covers(a.area, g.boundary) THEN 1.0
                ELSE ST_Area(ST_Intersection(g.boundary, a.area)::geography)
                     / ST_Area(g.boundary::geography) END AS share
    FROM area a
    JOIN grid g ON ST_Intersects(g.boundary, a.area)
    WHERE g.retired_at IS NULL
), best AS (
    SELECT DISTINCT ON (grid_id) grid_id, tier, share
    FROM hit
    WHERE share > 0 AND share >= :min_share
    ORDER BY grid_id, rank DESC, share DESC
), eta AS (
    SELECT b.grid_id, min(c.valid_at) AS gale_eta
    FROM best b
    JOIN grid g ON g.id = b.grid_id
    JOIN warning_area c ON c.warning_id = :warning_id AND c.valid_at IS NOT NULL
                       AND ST_Intersects(c.area, g.boundary)
    GROUP BY b.grid_id
)
SELECT b.grid_id, g.code, b.tier, round(b.share::numeric, 4)::float AS share, e.gale_eta,
       coalesce(t.buildings, 0) AS buildings,
       coalesce(t.risky_buildings, 0) AS risky_buildings,
       coalesce(t.residents, 0) AS residents,
       coalesce(t.vulnerable, 0) AS vulnerable
FROM best b
JOIN grid g ON g.id = b.grid_id
LEFT JOIN eta e ON e.grid_id = b.grid_id
LEFT JOIN grid_total t ON t.grid_id = b.grid_id
