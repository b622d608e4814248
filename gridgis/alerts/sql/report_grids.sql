-- The after-action numbers of a warning's chain (:warning and its updates), one row per grid
-- it reached: when it was alerted, told (first message sent) and acknowledged, how its
-- checklist went (items, finished, people moved) and when the checklist was finished.
WITH items AS (
    SELECT i.checklist_id, count(*) AS items,
           count(*) FILTER (WHERE i.state IN ('done', 'not_needed')) AS finished,
           count(*) FILTER (WHERE i.state = 'unable') AS unable,
           count(*) FILTER (WHERE i.kind = 'contact') AS to_contact,
           count(*) FILTER (WHERE i.kind = 'contact' AND i.state = 'done') AS contacted,
           coalesce(sum(i.people) FILTER (WHERE i.kind = 'transfer'), 0) AS to_transfer,
           coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'left_home'), 0) AS on_the_way,
           coalesce(sum(i.head_count) FILTER (WHERE i.stage IN ('checked_in', 'checked_out')),
                    0) AS transferred
    FROM checklist_item i
    JOIN checklist c ON c.id = i.checklist_id
    JOIN alert a ON a.id = c.alert_id
    JOIN warning_chain(:warning) chain ON chain.warning_id = a.warning_id
    GROUP BY i.checklist_id
)
SELECT g.code AS grid, g.name AS grid_name, cu.code AS community, st.code AS street,
       a.tier, a.state AS alert_state, a.created_at AS alerted_at, a.grid_version,
       (SELECT min(o.sent_at) FROM outbox o WHERE o.alert_id = a.id AND o.kind = 'alert'
          AND o.state = 'sent') AS told_at,
       a.acknowledged_at, a.escalation_level, a.gale_eta,
       c.state AS checklist_state, c.due_at, c.unplaced,
       coalesce(n.items, 0) AS items, coalesce(n.finished, 0) AS finished,
       coalesce(n.unable, 0) AS unable, coalesce(n.to_contact, 0) AS to_contact,
       coalesce(n.contacted, 0) AS contacted, coalesce(n.to_transfer, 0) AS to_transfer,
       coalesce(n.on_the_way, 0) AS on_the_way, coalesce(n.transferred, 0) AS transferred,
       c.closed_at,
       -- worked through: when the last item first reached done, not needed or unable
       CASE WHEN n.items > 0 AND n.finished + n.unable = n.items
            THEN (SELECT max(first_end) FROM (
                      SELECT min(e.at) AS first_end FROM checklist_event e
                      WHERE e.checklist_id = c.id
                        AND e.state IN ('done', 'not_needed', 'unable')
                      GROUP BY e.item_id) ends)
       END AS worked_through_at
FROM alert a
JOIN warning_chain(:warning) chain ON chain.warning_id = a.warning_id
JOIN grid g ON g.id = a.grid_id
JOIN admin_unit cu ON cu.id = g.community_id
JOIN admin_unit st ON st.id = cu.parent_id
LEFT JOIN checklist c ON c.alert_id = a.id
LEFT JOIN items n ON n.checklist_id = c.id
ORDER BY g.code
