-- Districts, streets and communities of one tile as a Mapbox vector tile layer
-- "admin-units" (feature id = admin_unit.id). Boundaries are EPSG:4326; the tile is
-- EPSG:3857, 4096 units wide with a 64-unit buffer. The bounding-box filter stays on the
-- 4326 column so its GiST index is used; the tile plus its buffer is clipped to the world
-- first, or edge tiles would wrap across the antimeridian.
SELECT ST_AsMVT(tile, 'admin-units', 4096, 'geom', 'id')
FROM (
    SELECT unit.id, unit.code, unit.name, unit.level, unit.kind,
           (SELECT parent.code FROM admin_unit AS parent
            WHERE parent.id = unit.parent_id) AS parent_code,
           ST_AsMVTGeom(ST_Transform(unit.boundary, 3857),
                        ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom
    FROM admin_unit AS unit
    WHERE unit.retired_at IS NULL
      AND unit.boundary && ST_Transform(
          ST_ClipByBox2D(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 64.0 / 4096),
                         ST_TileEnvelope(0, 0, 0)), 4326)
) AS tile
