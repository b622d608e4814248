-- After the grids are written: the buildings of the touched grids (and any now inside a
-- touched grid) join the grid holding them (the building trigger finds it when grid_id is
-- set to NULL); the touched grids' households are recounted.
UPDATE building b SET grid_id = NULL
WHERE b.retired_at IS NULL
  AND (b.grid_id = ANY(CAST(:retired AS int[])) OR b.grid_id = ANY(CAST(:touched AS int[]))
       OR EXISTS (SELECT 1 FROM grid g WHERE g.id = ANY(CAST(:touched AS int[]))
                  AND g.retired_at IS NULL AND ST_Covers(g.boundary, b.location)
                  AND g.id <> b.grid_id));
UPDATE grid g SET households = (
    SELECT count(DISTINCT r.household_code) FROM building b
    JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
    WHERE b.grid_id = g.id)
WHERE g.id = ANY(CAST(:touched AS int[]));
