-- Checklists with their progress, soonest due first: of a warning's chain (the warning, what
-- it updates and what updates it), a grid, the grids of a grid team (NULL: all).
SELECT c.id, g.code AS grid, w.identifier AS warning, c.state, c.due_at, c.unplaced,
       c.made_at IS NOT NULL AS ready,
       count(i.id) AS items,
       count(i.id) FILTER (WHERE i.state IN ('done', 'not_needed')) AS finished,
       count(i.id) FILTER (WHERE i.state = 'unable') AS unable,
       coalesce(sum(i.people) FILTER (WHERE i.kind = 'transfer'), 0) AS to_transfer,
       coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'left_home'), 0) AS on_the_way,
       coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'checked_in'), 0) AS checked_in,
       c.state = 'open' AND checklist_at_risk(
           count(i.id), count(i.id) FILTER (WHERE i.state NOT IN ('done', 'not_needed',
                                                                  'unable')),
           c.due_at, c.created_at, now()) AS at_risk
FROM checklist c
JOIN alert a ON a.id = c.alert_id
JOIN warning w ON w.id = a.warning_id
JOIN grid g ON g.id = c.grid_id
LEFT JOIN checklist_item i ON i.checklist_id = c.id
WHERE (CAST(:warning AS text) IS NULL
       OR a.warning_id IN (SELECT warning_id FROM warning_chain(:warning)))
  AND (CAST(:grid AS text) IS NULL OR g.code = :grid)
  AND (CAST(:state AS text) IS NULL OR c.state = :state)
  AND (CAST(:grids AS int[]) IS NULL OR c.grid_id = ANY(:grids))
GROUP BY c.id, g.code, w.identifier
ORDER BY c.due_at NULLS LAST, g.code
LIMIT :limit
