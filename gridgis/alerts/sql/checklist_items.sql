-- The items of the checklists of alerts :alert_ids, by the rules of each alert's tier
-- (:rules, JSON: tier -> rule, see checklist_rules.toml). Statements run in order, each
-- ending with a semicolon; running them again adds only what is missing (an update that
-- raises a grid's tier adds its new items and keeps the old ones and their state). Each
-- statement reads its rule lists once per tier (the `rule` CTE), never once per row.
-- Distances are metres on the sphere: within 0.5 % of the spheroid's, at a fraction of
-- the cost.

-- Households to transfer: every resident of a building with a listed risk flag, and
-- residents with a listed vulnerability; one item per household (those with someone who
-- moves), with its needs.
WITH rule AS MATERIALIZED (
    SELECT t.tier,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_buildings')) AS buildings,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_people')) AS people
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), mover AS (
    SELECT DISTINCT c.id AS checklist_id, c.grid_id, a.tier, r.household_code
    FROM checklist c
    JOIN alert a ON a.id = c.alert_id
    JOIN rule ON rule.tier = a.tier
    JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
    JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
      AND (b.risk_flags && rule.buildings OR r.vulnerabilities && rule.people)
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, household_code,
                            building_id, people, household_size, needs, stage)
SELECT h.checklist_id, 'transfer', 'household:' || h.household_code, 1, h.household_code,
       min(b.id), count(*) FILTER (WHERE m.moves), count(*),
       array_remove(ARRAY[
           CASE WHEN bool_or(m.moves AND r.vulnerabilities && CAST('{disabled,bedridden}' AS text[]))
                THEN 'wheelchair' END,
           CASE WHEN bool_or(m.moves AND r.vulnerabilities
                             && CAST('{bedridden,chronic_ill,pregnant}' AS text[]))
                THEN 'medical' END], NULL),
       'to_transfer'
FROM mover h
JOIN rule ON rule.tier = h.tier
JOIN resident r ON r.household_code = h.household_code AND r.moved_out_at IS NULL
JOIN building b ON b.id = r.building_id AND b.grid_id = h.grid_id AND b.retired_at IS NULL
CROSS JOIN LATERAL (SELECT b.risk_flags && rule.buildings
                           OR r.vulnerabilities && rule.people AS moves) m
GROUP BY h.checklist_id, h.household_code
HAVING bool_or(m.moves)
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO UPDATE
SET people = greatest(checklist_item.people, EXCLUDED.people), needs = EXCLUDED.needs,
    household_size = EXCLUDED.household_size, version = checklist_item.version + 1,
    updated_at = now()
WHERE checklist_item.stage = 'to_transfer'  -- a new version only when something changed
  AND (checklist_item.people < EXCLUDED.people OR checklist_item.needs <> EXCLUDED.needs
       OR checklist_item.household_size <> EXCLUDED.household_size);

-- People to call: residents with a listed vulnerability.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'contact')) AS contact
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, resident_id, building_id)
SELECT c.id, 'contact', 'resident:' || r.id, 2, r.id, b.id
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN rule ON rule.tier = a.tier
JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
JOIN resident r ON r.building_id = b.id AND r.moved_out_at IS NULL
WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
  AND r.vulnerabilities && rule.contact
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;

-- Buildings to inspect and clear.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'inspect_buildings'))
           AS flags
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, building_id)
SELECT c.id, 'inspect', 'building:' || b.id, 3, b.id
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN rule ON rule.tier = a.tier
JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
  AND b.risk_flags && rule.flags
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;

-- Shelters near the grid to open: the nearest few within the tier's distance (those the
-- grid's households are sent to are added after allocation).
INSERT INTO checklist_item (checklist_id, kind, subject, priority, shelter_id)
SELECT c.id, 'open_shelter', 'shelter:' || s.id, 1, s.id
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN grid g ON g.id = c.grid_id
CROSS JOIN LATERAL (
    SELECT CAST(CAST(:rules AS jsonb) -> a.tier ->> 'shelters_within_m' AS float8) AS metres,
           CAST(CAST(:rules AS jsonb) -> a.tier ->> 'shelters_nearest' AS int) AS most) w
CROSS JOIN LATERAL (
    SELECT s.id FROM shelter s
    WHERE s.retired_at IS NULL
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
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, station_id)
SELECT c.id, 'staff_station', 'station:' || st.id, 2, st.id
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN rule ON rule.tier = a.tier
JOIN grid g ON g.id = c.grid_id
JOIN station st ON st.retired_at IS NULL AND ST_Covers(g.boundary, st.location)
WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
  AND st.level = ANY(rule.levels)
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;
