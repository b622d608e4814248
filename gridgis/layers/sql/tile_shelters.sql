-- Shelters of one tile as a Mapbox vector tile layer "shelters" (feature id = shelter.id).
-- Points are EPSG:4326; the tile is EPSG:3857, 4096 units wide with a 64-unit buffer. The
-- bounding-box filter stays on the 4326 column so its GiST index is used; the tile plus its
-- buffer is clipped to the world first, or edge tiles would wrap across the antimeridian.
SELECT ST_AsMVT(tile, 'shelters', 4096, 'geom', 'id')
FROM (
    SELECT shelter.id, shelter.code, shelter.name, shelter.kind,
           shelter.capacity, shelter.occupancy,
           ST_AsMVTGeom(ST_Transform(shelter.location, 3857),
                        ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom
    FROM shelter
    WHERE shelter.retired_at IS NULL
      AND shelter.location && ST_Transform(
          ST_ClipByBox2D(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 64.0 / 4096),
                         ST_TileEnvelope(0, 0, 0)), 4326)
) AS tile
