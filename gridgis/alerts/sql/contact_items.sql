-- The people to call of the checklists of alerts :alert_ids, by the rules of each alert's
-- tier (:rules, see checklist_items.sql): written after the transfer items, as it reads them.
-- People to call: residents with a listed vulnerability, unless their household moves under
-- the same checklist (written before these): its transfer item is the visit that reaches
-- them, and one visit is one item (a household's names and needs are on its transfer).
-- The resident's home is theirs (read through resident_id): a contact item holds no building
-- of its own, one foreign key less to check per row.
WITH rule AS MATERIALIZED (
    SELECT t.tier, ARRAY(SELECT jsonb_array_elements_text(t.rule -> 'contact')) AS contact
    FROM jsonb_each(CAST(:rules AS jsonb)) AS t(tier, rule)
), target AS MATERIALIZED (
    SELECT c.id, c.grid_id, rule.contact
    FROM checklist c JOIN alert a ON a.id = c.alert_id JOIN rule ON rule.tier = a.tier
    WHERE c.alert_id = ANY(:alert_ids) AND c.state = 'open'
), moving AS MATERIALIZED (  -- the households these checklists transfer, looked up by hash
    SELECT i.checklist_id, i.household_code
    FROM target c JOIN checklist_item i ON i.checklist_id = c.id AND i.kind = 'transfer'
)
INSERT INTO checklist_item (checklist_id, kind, subject, priority, resident_id)
SELECT c.id, 'contact', 'resident:' || r.id, 2, r.id
FROM target c
JOIN building b ON b.grid_id = c.grid_id AND b.retired_at IS NULL
CROSS JOIN LATERAL (  -- through the residents' index, as in transfer_households.sql
    SELECT r.id, r.household_code, r.vulnerabilities FROM resident r
    WHERE r.building_id = b.id AND r.moved_out_at IS NULL OFFSET 0) r
LEFT JOIN moving m ON m.checklist_id = c.id AND m.household_code = r.household_code
WHERE r.vulnerabilities && c.contact AND m.checklist_id IS NULL
ON CONFLICT ON CONSTRAINT uq_checklist_item_subject DO NOTHING;
