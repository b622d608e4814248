-- Checklist progress of a warning's whole chain (the warning, what it updates and what
-- updates it), rolled up to :level (grid, community, street or district) at the moments
-- :since, :since + :step, ... up to :until (and :until itself). A moment sees what was true
-- then: items made by then, each as its last change at or before it (checklist_event), so
-- the same statement answers "now", "at 03:00" and the after-action time series.
-- Optional :grids keeps to a grid team's or a unit head's grids.
WITH lists AS (
    SELECT c.id, c.created_at, c.due_at, c.closed_at,
           CASE CAST(:level AS text) WHEN 'grid' THEN g.code WHEN 'community' THEN cu.code
                WHEN 'street' THEN st.code ELSE di.code END AS unit,
           CASE CAST(:level AS text) WHEN 'grid' THEN g.name WHEN 'community' THEN cu.name
                WHEN 'street' THEN st.name ELSE di.name END AS unit_name
    FROM checklist c
    JOIN alert a ON a.id = c.alert_id
    JOIN warning_chain(:warning) chain ON chain.warning_id = a.warning_id
    JOIN grid g ON g.id = c.grid_id
    JOIN admin_unit cu ON cu.id = g.community_id
    JOIN admin_unit st ON st.id = cu.parent_id
    JOIN admin_unit di ON di.id = st.parent_id
    WHERE CAST(:grids AS int[]) IS NULL OR c.grid_id = ANY(:grids)
), moments AS (
    SELECT DISTINCT t FROM (
        SELECT generate_series(CAST(:since AS timestamptz), CAST(:until AS timestamptz),
                               make_interval(secs => :step)) AS t
        UNION ALL SELECT CAST(:until AS timestamptz)) m
), changes AS (
    -- what each item adds as it is made ...
    SELECT i.checklist_id, i.created_at AS at, 1 AS items, 0 AS finished, 0 AS unable,
           0 AS contacted, CASE WHEN i.kind = 'transfer' THEN i.people ELSE 0 END AS to_transfer,
           0 AS on_the_way, 0 AS checked_in
    FROM checklist_item i JOIN lists l ON l.id = i.checklist_id
    UNION ALL
    -- ... and what each change adds: the item as it became, less the item as it was
    SELECT e.checklist_id, e.at, 0,
           (e.state IN ('done', 'not_needed'))::int - (e.was IN ('done', 'not_needed'))::int,
           (e.state = 'unable')::int - (e.was = 'unable')::int,
           CASE WHEN e.kind = 'contact'
                THEN (e.state = 'done')::int - (e.was = 'done')::int ELSE 0 END,
           0,
           CASE WHEN e.stage = 'left_home' THEN coalesce(e.head_count, 0) ELSE 0 END
           - CASE WHEN e.was_stage = 'left_home' THEN coalesce(e.was_head_count, 0) ELSE 0 END,
           CASE WHEN e.stage = 'checked_in' THEN coalesce(e.head_count, 0) ELSE 0 END
           - CASE WHEN e.was_stage = 'checked_in' THEN coalesce(e.was_head_count, 0) ELSE 0 END
    FROM (
        SELECT e.checklist_id, e.at, e.state, e.stage, e.head_count, i.kind,
               lag(e.state, 1, 'pending') OVER w AS was,
               lag(e.stage) OVER w AS was_stage,
               lag(e.head_count) OVER w AS was_head_count
        FROM checklist_event e
        JOIN lists l ON l.id = e.checklist_id
        JOIN checklist_item i ON i.id = e.item_id
        WINDOW w AS (PARTITION BY e.item_id ORDER BY e.at, e.id)
    ) e
), binned AS (
    -- each change counts from the first moment at or after it
    SELECT c.checklist_id,
           least(CAST(:since AS timestamptz) + make_interval(secs => :step * greatest(0, ceil(
                     extract(epoch FROM c.at - CAST(:since AS timestamptz)) / :step))),
                 CAST(:until AS timestamptz)) AS t,
           sum(c.items) AS items, sum(c.finished) AS finished, sum(c.unable) AS unable,
           sum(c.contacted) AS contacted, sum(c.to_transfer) AS to_transfer,
           sum(c.on_the_way) AS on_the_way, sum(c.checked_in) AS checked_in
    FROM changes c
    WHERE c.at <= CAST(:until AS timestamptz)
    GROUP BY 1, 2
), per_list AS (
    SELECT l.id, l.created_at, l.due_at, l.closed_at, l.unit, l.unit_name, m.t,
           coalesce(sum(b.items) OVER w, 0) AS items,
           coalesce(sum(b.finished) OVER w, 0) AS finished,
           coalesce(sum(b.unable) OVER w, 0) AS unable,
           coalesce(sum(b.contacted) OVER w, 0) AS contacted,
           coalesce(sum(b.to_transfer) OVER w, 0) AS to_transfer,
           coalesce(sum(b.on_the_way) OVER w, 0) AS on_the_way,
           coalesce(sum(b.checked_in) OVER w, 0) AS checked_in
    FROM lists l
    CROSS JOIN moments m
    LEFT JOIN binned b ON b.checklist_id = l.id AND b.t = m.t
    WINDOW w AS (PARTITION BY l.id ORDER BY m.t)
)
SELECT t AS at, unit, unit_name, count(*) AS grids,
       sum(items)::int AS items, sum(finished)::int AS finished, sum(unable)::int AS unable,
       sum(contacted)::int AS contacted, sum(to_transfer)::int AS to_transfer,
       sum(on_the_way)::int AS on_the_way, sum(checked_in)::int AS checked_in,
       count(*) FILTER (WHERE (closed_at IS NULL OR closed_at > t) AND checklist_at_risk(
           items, items - finished - unable, due_at, created_at, t))::int AS at_risk,
       count(*) FILTER (WHERE closed_at IS NOT NULL AND closed_at <= t)::int AS closed
FROM per_list
WHERE t >= created_at
GROUP BY t, unit, unit_name
ORDER BY t, unit
