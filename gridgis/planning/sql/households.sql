-- Households living in each proposed grid (by the buildings its area covers).
WITH p AS (
    SELECT code, action, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
    FROM unnest(CAST(:codes AS text[]), CAST(:actions AS text[]), CAST(:wkbs AS bytea[]))
         AS t(code, action, wkb)
)
SELECT p.code, count(DISTINCT r.household_code) AS households
FROM p
JOIN building b ON b.retired_at IS NULL AND ST_Covers(p.geom, b.location)
JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
WHERE p.action <> 'retire'
GROUP BY p.code
