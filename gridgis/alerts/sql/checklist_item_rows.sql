-- Checklist items as the grid team works them, most urgent first: of one item (item_id) or
-- of one checklist (checklist_id). Codes, never names: residents are read at /api/residents.
SELECT i.id, i.checklist_id, c.grid_id, g.code AS grid, i.kind, i.priority, i.state, i.stage,
       i.people, i.household_size, i.head_count, i.needs, r.code AS resident,
       i.household_code AS household, b.code AS building, s.code AS shelter,
       st.code AS station, i.distance_m, i.reason, i.note, u.username AS updated_by,
       i.updated_at, i.version,
       ST_X(coalesce(b.location, s.location, st.location)) AS lon,
       ST_Y(coalesce(b.location, s.location, st.location)) AS lat
FROM checklist_item i
JOIN checklist c ON c.id = i.checklist_id
JOIN grid g ON g.id = c.grid_id
LEFT JOIN resident r ON r.id = i.resident_id
LEFT JOIN building b ON b.id = coalesce(i.building_id, r.building_id)  -- a contact: their home
LEFT JOIN shelter s ON s.id = i.shelter_id
LEFT JOIN station st ON st.id = i.station_id
LEFT JOIN app_user u ON u.id = i.updated_by
WHERE (CAST(:item_id AS int) IS NULL OR i.id = :item_id)
  AND (CAST(:checklist_id AS int) IS NULL OR i.checklist_id = :checklist_id)
ORDER BY i.priority, cardinality(i.needs) DESC, i.state <> 'pending', i.id
