-- The items of the checklists of alerts :alert_ids that do not depend on who moves where, by
-- the rules of each alert's tier (:rules, JSON: tier -> rule, see checklist_rules.toml):
-- they run while the shelters are allocated (checklists.py). Statements run in order, each
-- ending with a semicolon; running them again adds only what is missing (an update that
-- raises a grid's tier adds its new items and keeps the old ones and their state). Each
-- statement reads its rule lists once per tier (the `rule` CTE), never once per row, and
-- starts from its checklists with their lists (the `target` CTE, materialised): the
-- planner then reaches buildings, residents and stations through their indexes from each
-- grid, whatever its statistics say of the checklists just opened (with the rule joined
-- among the other tables it once joined every station to every checklist first: 9 s).
-- Distances are metres on the sphere: within 0.5 % of the spheroid's, at a fraction of
-- the cost. The households to transfer are not here: they are read first
-- (transfer_households.sql), given their shelters, and written with them (checklists.py);
-- the people to call come after those (contact_items.sql).

-- Buildings to inspect and clear.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'inspect_buildings'))
           AS flags
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), target AS MATERIALIZED (
    SELECT c.id, c.grid_id, rule.flags
    FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN rule ON rule.tier = a.tier
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, building_id)
SELECT c.id, 'inspect', 'building:' || b.id, 3, b.id
FROM target c
JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
WHERE b.risk_flags && c.flags
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;

-- Shelters near the grid to open: the nearest few within the tier's distance (those the
-- grid's households are sent to are added after allocation). The box around the grid holds
-- every point within that distance on the sphere (a degree of latitude is at least
-- metres / R, one of longitude at least 2 asin(metres / (2 R cos lat)) at the box's
-- highest latitude; R a little under the sphere's 6,371,009 m), so the nearest are found
-- through the shelters' index: without it the planner may test every shelter against every
-- grid on the sphere (108 s for 2,000 grids). The box holds for grids below 89 degrees of
-- latitude less the reach and a reach away from the antimeridian (ST_Expand does not wrap):
-- the territories gridgis serves lie in China's box (spatial.CHINA), where both hold.
INSERT INTO checklist_item (checklist_id, kind, subject, priority, shelter_id)
SELECT c.id, 'open_shelter', 'shelter:' || s.id, 1, s.id
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN grid g ON g.id = c.grid_id
CROSS JOIN LATERAL (
    SELECT CAST(CAST(:rules AS jsonb) -> a.tier ->> 'shelters_within_m' AS float8) AS metres,
           CAST(CAST(:rules AS jsonb) -> a.tier ->> 'shelters_nearest' AS int) AS most) w
CROSS JOIN LATERAL (
    SELECT degrees(w.metres / 6370000) + 1e-6 AS lat,
           degrees(2 * asin(least(1, w.metres / (2 * 6370000 * cos(radians(least(89.0,
               greatest(abs(ST_YMin(g.boundary)), abs(ST_YMax(g.boundary)))
               + degrees(w.metres / 6370000)))))))) + 1e-6 AS lon) reach
CROSS JOIN LATERAL (
    SELECT s.id FROM shelter s
    WHERE s.retired_at IS NULL
      AND s.location && ST_Expand(g.boundary, reach.lon, reach.lat)
      AND ST_DWithin(CAST(s.location AS geography), CAST(g.boundary AS geography), w.metres,
                     false)
    ORDER BY s.location <-> g.boundary
    LIMIT w.most) s
WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;

-- Service positions in the grid to staff.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'staff_stations'))
           AS levels
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), target AS MATERIALIZED (
    SELECT c.id, c.grid_id, rule.levels
    FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN rule ON rule.tier = a.tier
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, station_id)
SELECT c.id, 'staff_station', 'station:' || st.id, 2, st.id
FROM target c
JOIN grid g ON g.id = c.grid_id
JOIN station st ON st.retired_at IS NULL AND ST_Covers(g.boundary, st.location)
WHERE st.level = ANY(c.levels)
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;
