-- After the grids are written: the buildings of the reshaped grids (and any now inside
-- one) join the grid holding them (the building trigger finds it when grid_id is set to
-- NULL); the reshaped grids' households are recounted. A rename moves nothing.
UPDATE building b SET grid_id = NULL
WHERE b.retired_at IS NULL
  AND (b.grid_id = ANY(CAST(:retired AS int[])) OR b.grid_id = ANY(CAST(:reshaped AS int[]))
       OR EXISTS (SELECT 1 FROM grid g WHERE g.id = ANY(CAST(:reshaped AS int[]))
                  AND g.retired_at IS NULL AND ST_Covers(g.boundary, b.location)
                  AND g.id <> b.grid_id));
UPDATE grid g SET households = (
    SELECT count(DISTINCT r.household_code) FROM building b
    JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
    WHERE b.grid_id = g.id)
WHERE g.id = ANY(CAST(:reshaped AS int[]));
