-- Unacknowledged alerts past their due time go one step up the hierarchy: step 1 the heads
-- of the grid's community, step 2 the heads of its street and the command centre (straight
-- to step 2 when the community has no head). Step 1 starts a new window; step 2 is the last.
-- Each escalation goes on the feed and on :channels (those a person has), one outbox row per
-- (alert, step, recipient, channel). Returns (escalated alerts, queued messages).
WITH due AS (
    SELECT a.id, a.escalation_level, a.created_at, w.id AS warning_id, w.identifier,
           w.level, w.level_rank, w.event, w.headline, w.status, a.tier, a.gale_eta,
           g.code, g.name, g.community_id, c.parent_id AS street_id
    FROM alert a
    JOIN warning w ON w.id = a.warning_id
    JOIN grid g ON g.id = a.grid_id
    JOIN admin_unit c ON c.id = g.community_id
    WHERE a.state = 'active' AND a.acknowledged_at IS NULL AND a.ack_due_at <= now()
      AND a.escalation_level < 2
    ORDER BY a.ack_due_at
    LIMIT :limit
    FOR UPDATE OF a SKIP LOCKED
), stepped AS (
    SELECT due.*, CASE WHEN due.escalation_level = 0 AND EXISTS (
               SELECT 1 FROM app_user_unit uu JOIN app_user u ON u.id = uu.app_user_id
               WHERE uu.admin_unit_id = due.community_id AND u.active) THEN 1 ELSE 2 END AS step
    FROM due
), bumped AS (
    UPDATE alert a
    SET escalation_level = s.step, escalated_at = now(),
        ack_due_at = CASE WHEN s.step = 1 THEN now() + make_interval(
                         secs => 60 * (CAST(:windows AS float8[]))[s.level_rank]) END
    FROM stepped s WHERE a.id = s.id
    RETURNING a.id
), recipient AS (
    SELECT s.*, uu.app_user_id
    FROM stepped s
    JOIN app_user_unit uu
      ON uu.admin_unit_id = CASE WHEN s.step = 1 THEN s.community_id ELSE s.street_id END
    UNION
    SELECT s.*, u.id FROM stepped s JOIN app_user u ON u.role = 'command' WHERE s.step = 2
), queued AS (
    INSERT INTO outbox (alert_id, app_user_id, channel, idempotency_key, kind, payload)
    SELECT r.id, u.id, ch.channel,
           r.id || ':' || r.warning_id || ':' || 'escalation-' || r.step || ':' || u.id || ':'
               || ch.channel,
           'escalation',
           jsonb_build_object('kind', 'escalation', 'step', r.step, 'alert', r.id,
                              'warning', r.identifier, 'grid', r.code, 'grid_name', r.name,
                              'tier', r.tier, 'level', r.level, 'event', r.event,
                              'headline', r.headline, 'gale_eta', r.gale_eta,
                              'since', r.created_at, 'exercise', r.status <> 'actual')
    FROM recipient r
    JOIN app_user u ON u.id = r.app_user_id AND u.active
    CROSS JOIN LATERAL (VALUES ('feed'),
        (CASE WHEN u.phone IS NOT NULL AND 'sms' = ANY(:channels) THEN 'sms' END),
        (CASE WHEN u.email IS NOT NULL AND 'email' = ANY(:channels) THEN 'email' END)
    ) ch(channel)
    WHERE ch.channel IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM bumped) AS alerts, (SELECT count(*) FROM queued) AS messages
