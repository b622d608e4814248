-- Buildings of one tile as a Mapbox vector tile layer "buildings" (feature id = building.id):
-- the footprint where there is one, else the point. Geometries are EPSG:4326; the tile is
-- EPSG:3857, 4096 units wide with a 64-unit buffer. Each side of the OR has the GiST index of
-- its 4326 column; it may let in a footprint that misses the tile (its point inside), which
-- ST_AsMVTGeom clips to nothing and ST_AsMVT leaves out. The tile plus its buffer is clipped
-- to the world first, or edge tiles would wrap across the antimeridian.
-- risk_flags is a comma-joined string ('' for none); grid_code is the grid holding the point
-- (every building has one, kept by a trigger). The grid is a LATERAL lookup with LIMIT 1 so
-- that it stays a nested loop under a Memoize (one index probe per grid in the tile, not per
-- building); a plain join is planned as a hash join over all 20,000 grids from z14 down.
SELECT ST_AsMVT(tile, 'buildings', 4096, 'geom', 'id')
FROM (
    SELECT building.id, building.code, building.use, building.floors,
           array_to_string(building.risk_flags, ',') AS risk_flags,
           grid.code AS grid_code,
           ST_AsMVTGeom(ST_Transform(coalesce(building.footprint, building.location), 3857),
                        ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom
    FROM building
    CROSS JOIN LATERAL (
        SELECT grid.code FROM grid WHERE grid.id = building.grid_id LIMIT 1
    ) AS grid
    CROSS JOIN LATERAL (
        SELECT ST_Transform(
            ST_ClipByBox2D(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 64.0 / 4096),
                           ST_TileEnvelope(0, 0, 0)), 4326) AS bounds
    ) AS tile_bounds
    WHERE building.retired_at IS NULL
      AND (building.footprint && tile_bounds.bounds OR building.location && tile_bounds.bounds)
) AS tile
