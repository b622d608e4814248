-- Households to transfer under the checklists of alerts :alert_ids, by the rules of each
-- alert's tier (:rules, JSON: tier -> rule, see checklist_rules.toml): every resident of a
-- building with a listed risk flag, and residents with a listed vulnerability; one row per
-- household with someone who moves, with its needs (wheelchair, medical); a household is
-- its members living in the grid (one pass over the grid's residents, each resident's
-- `moves` worked out once). Read before the
-- items are written, so they go in once with their shelter. Each household comes with the
-- item it already has (a checklist made again: item_id, its stage and shelter), and the
-- items still without a shelter that no household of the rules matches any more come too
-- (household_size null: they are only given a shelter). `turn` is the order of the items'
-- ids: the items there are, then the new ones as they are inserted (checklist,
-- household). Rows come in the order households are given shelters: soonest gale first
-- (none last), most needs first, then by turn. The residents are read building by building
-- through their index (a LATERAL kept apart by OFFSET 0): once the statistics know how
-- many grids a warning reaches, the planner would otherwise scan every resident of the
-- territory for a tenth of it (5 million rows: 1.7 s against 0.6 s, and it grows with the
-- territory, not the warning).
WITH rule AS MATERIALIZED (
    SELECT t.tier,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_buildings')) AS buildings,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_people')) AS people
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), target AS MATERIALIZED (  -- the checklists with their lists: see checklist_items.sql
    SELECT c.id, c.grid_id, c.due_at, a.tier, rule.buildings, rule.people
    FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN rule ON rule.tier = a.tier
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
), member AS MATERIALIZED (  -- each resident of the grids once: do they move?
    SELECT c.id AS checklist_id, r.household_code, b.id AS building_id, r.vulnerabilities,
           b.risk_flags && c.buildings OR r.vulnerabilities && c.people AS moves
    FROM target c
    JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
    CROSS JOIN LATERAL (  -- each building's residents through its index: see below
        SELECT r.household_code, r.vulnerabilities FROM resident r
        WHERE r.building_id = b.id AND r.moved_out_at IS NULL OFFSET 0) r
), mover AS (  -- the households with someone who moves
    SELECT DISTINCT checklist_id, household_code FROM member WHERE moves
), household AS (  -- those households, every member of them in the grid
    SELECT m.checklist_id, m.household_code, min(m.building_id) AS building_id,
           count(*) FILTER (WHERE m.moves) AS people, count(*) AS household_size,
           bool_or(m.moves AND m.vulnerabilities
                   && CAST('{disabled,bedridden}' AS text[])) AS wheelchair,
           bool_or(m.moves AND m.vulnerabilities
                   && CAST('{bedridden,chronic_ill,pregnant}' AS text[])) AS medical
    FROM member m
    JOIN mover USING (checklist_id, household_code)
    GROUP BY m.checklist_id, m.household_code
), waiting AS (  -- items of these checklists without a shelter yet
    SELECT i.id, i.checklist_id, i.household_code, i.building_id, i.people, i.needs,
           i.stage
    FROM checklist_item i JOIN checklist c ON c.id = i.checklist_id
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open' AND i.kind = 'transfer'
      AND i.shelter_id IS NULL
), transfer AS (  -- each household with its item, if it has one
    SELECT h.checklist_id, c.due_at, h.household_code, h.building_id, h.people,
           h.household_size, h.wheelchair, h.medical, i.id AS item_id, i.stage AS item_stage,
           i.shelter_id AS item_shelter_id, i.people AS item_people
    FROM household h
    JOIN target c ON c.id = h.checklist_id
    LEFT JOIN checklist_item i ON i.checklist_id = h.checklist_id AND i.kind = 'transfer'
         AND i.subject = 'household:' || h.household_code
    UNION ALL
    SELECT w.checklist_id, c.due_at, w.household_code, w.building_id, w.people, NULL,
           'wheelchair' = ANY(w.needs), 'medical' = ANY(w.needs), w.id, w.stage, NULL, w.people
    FROM waiting w
    JOIN checklist c ON c.id = w.checklist_id
    WHERE NOT EXISTS (SELECT FROM household h WHERE h.checklist_id = w.checklist_id
                      AND h.household_code = w.household_code)
)
SELECT transfer.*, row_number() OVER (ORDER BY item_id NULLS LAST, checklist_id,
                                               household_code) AS turn
FROM transfer
ORDER BY due_at NULLS LAST, CAST(wheelchair AS int) + CAST(medical AS int) DESC, turn
