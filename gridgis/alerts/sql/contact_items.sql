-- The people to call of the checklists of alerts :alert_ids, by the rules of each alert's
-- tier (:rules, see checklist_items.sql): written after the transfer items, as it reads them.
-- People to call: residents with a listed vulnerability, unless they move under a transfer
-- item of the same checklist (written before these) that is still to be done: that item is
-- the visit that reaches them, and one person is on one item (their household's names and
-- the movers' needs are on it). Those who stay behind in a moving household, or whose
-- household's transfer was given up (unable, not needed), are called.
-- The resident's home is theirs (read through resident_id): a contact item holds no building
-- of its own, one foreign key less to check per row.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'contact')) AS contact,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_buildings'))
           AS buildings,
           ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'transfer_people')) AS people
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), target AS MATERIALIZED (
    SELECT c.id, c.grid_id, rule.contact, rule.buildings, rule.people
    FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN rule ON rule.tier = a.tier
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
), moving AS MATERIALIZED (  -- the households these checklists transfer, looked up by hash
    SELECT i.checklist_id, i.household_code
    FROM target c JOIN checklist_item i ON i.checklist_id = c.id AND i.kind = 'transfer'
    WHERE i.state NOT IN ('unable', 'not_needed')
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, resident_id)
SELECT c.id, 'contact', 'resident:' || r.id, 2, r.id
FROM target c
JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
CROSS JOIN LATERAL (  -- through the residents' index, as in transfer_households.sql
    SELECT r.id, r.household_code, r.vulnerabilities FROM resident r
    WHERE r.building_id = b.id AND r.moved_out_at IS NULL OFFSET 0) r
LEFT JOIN moving m ON m.checklist_id = c.id AND m.household_code = r.household_code
WHERE r.vulnerabilities && c.contact
  AND NOT (m.checklist_id IS NOT NULL  -- moving with their household, by the same rules
           AND (b.risk_flags && c.buildings OR r.vulnerabilities && c.people))
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;
