-- The live state the command-centre map colours grids by, in one JSON document: per grid
-- with an active alert its tier, level, acknowledgement, escalation and checklist progress
-- (the strongest alert when several warnings reach it); vulnerable residents of every grid;
-- the territory's figures; the active warnings' hazard areas (wind circles, swaths, drawn
-- areas) and storm tracks. Grid teams and unit heads get their own grids (:grids), the command centre all.
WITH active AS (
    SELECT DISTINCT ON (a.grid_id) a.id, a.grid_id, a.tier, w.level, w.level_rank,
           w.identifier AS warning, a.acknowledged_at, a.escalation_level, a.gale_eta
    FROM alert a JOIN warning w ON w.id = a.warning_id
    WHERE a.state = 'active'
      AND (CAST(:grids AS int[]) IS NULL OR a.grid_id = ANY(:grids))
    ORDER BY a.grid_id, w.level_rank DESC,
             CASE a.tier WHEN 'hurricane' THEN 4 WHEN 'storm' THEN 3 WHEN 'gale' THEN 2
                         ELSE 1 END DESC, a.id DESC
), progress AS (
    SELECT c.alert_id, count(i.id) AS items,
           count(i.id) FILTER (WHERE i.state IN ('done', 'not_needed', 'unable')) AS finished,
           coalesce(sum(i.head_count) FILTER (WHERE i.stage = 'checked_in'), 0) AS checked_in,
           c.state = 'open' AND checklist_at_risk(
               count(i.id),
               count(i.id) FILTER (WHERE i.state NOT IN ('done', 'not_needed', 'unable')),
               c.due_at, c.created_at, now()) AS at_risk
    FROM checklist c JOIN active a ON a.id = c.alert_id
    LEFT JOIN checklist_item i ON i.checklist_id = c.id
    GROUP BY c.id
), state AS (
    SELECT g.code, a.tier, a.level, a.level_rank, a.warning, a.id AS alert,
           a.acknowledged_at IS NOT NULL AS acknowledged, a.escalation_level, a.gale_eta,
           coalesce(p.items, 0) AS items, coalesce(p.finished, 0) AS finished,
           coalesce(p.checked_in, 0) AS checked_in, coalesce(p.at_risk, false) AS at_risk
    FROM active a JOIN grid g ON g.id = a.grid_id
    LEFT JOIN progress p ON p.alert_id = a.id
)
SELECT json_build_object(
    'at', now(),
    'grids', coalesce((SELECT json_object_agg(code, json_build_object(
        'tier', tier, 'level', level, 'rank', level_rank, 'warning', warning, 'alert', alert,
        'acknowledged', acknowledged, 'escalation', escalation_level, 'gale_eta', gale_eta,
        'items', items, 'finished', finished, 'checked_in', checked_in, 'at_risk', at_risk))
        FROM state), '{}'),
    'vulnerable', coalesce((SELECT json_object_agg(g.code, t.vulnerable)
        FROM grid_total t JOIN grid g ON g.id = t.grid_id
        WHERE t.vulnerable > 0 AND g.retired_at IS NULL
          AND (CAST(:grids AS int[]) IS NULL OR g.id = ANY(:grids))), '{}'),
    'totals', json_build_object(
        'alerted', (SELECT count(*) FROM state),
        'acknowledged', (SELECT count(*) FROM state WHERE acknowledged),
        'worked_through', (SELECT count(*) FROM state WHERE items > 0 AND finished = items),
        'at_risk', (SELECT count(*) FROM state WHERE at_risk),
        'checked_in', (SELECT coalesce(sum(checked_in), 0) FROM state),
        'shelter_room', (SELECT coalesce(sum(greatest(capacity - occupancy, 0)), 0)
                         FROM shelter WHERE retired_at IS NULL),
        'waiting_messages', (SELECT count(*) FROM outbox
                             WHERE state IN ('queued', 'failed', 'sending')),
        'dead_letters', (SELECT count(*) FROM outbox WHERE state = 'dead')),
    'areas', json_build_object('type', 'FeatureCollection', 'features', coalesce((
        SELECT json_agg(json_build_object(
            'type', 'Feature',
            'geometry', CAST(ST_AsGeoJSON(ST_SimplifyPreserveTopology(wa.area, 0.0005), 5)
                             AS json),
            'properties', json_build_object('warning', w.identifier, 'tier', wa.tier,
                                            'level', w.level, 'valid_at', wa.valid_at,
                                            'description', wa.description))
            ORDER BY wa.valid_at NULLS FIRST, wa.id)
        FROM warning_area wa JOIN warning w ON w.id = wa.warning_id
        WHERE w.id IN (SELECT w2.id FROM alert a2 JOIN warning w2 ON w2.id = a2.warning_id
                       WHERE a2.state = 'active')), '[]')),
    -- the storm's track: the centres of its timed wind circles, in time order
    'track', json_build_object('type', 'FeatureCollection', 'features', coalesce((
        SELECT json_agg(json_build_object(
            'type', 'Feature', 'geometry', CAST(ST_AsGeoJSON(t.line, 5) AS json),
            'properties', json_build_object('warning', t.identifier)))
        FROM (SELECT w.identifier, ST_MakeLine(ST_Centroid(wa.area) ORDER BY wa.valid_at)
                     AS line
              FROM warning_area wa JOIN warning w ON w.id = wa.warning_id
              WHERE wa.valid_at IS NOT NULL AND wa.tier = 'gale'
                AND w.id IN (SELECT a3.warning_id FROM alert a3 WHERE a3.state = 'active')
              GROUP BY w.identifier HAVING count(*) > 1) t), '[]')))
