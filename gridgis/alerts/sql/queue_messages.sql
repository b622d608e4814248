-- Messages about alerts to their grids' teams, one outbox row per (alert, warning, kind,
-- recipient, channel): its idempotency key. People get the feed, and SMS and e-mail when they
-- gave a phone or an address; a grid a team robot route covers (the longest-prefix match is
-- the sender's) gets a row per routed channel. :routes holds prefixes and channels only.
WITH about AS (
    SELECT a.id AS alert_id, a.grid_id, g.code, a.id || ':' || w.id || ':' || :kind AS key_head,
           jsonb_build_object('kind', :kind, 'alert', a.id, 'warning', w.identifier,
                              'grid', g.code, 'grid_name', g.name, 'tier', a.tier,
                              'level', w.level, 'event', w.event, 'headline', w.headline,
                              'gale_eta', a.gale_eta, 'exercise', w.status <> 'actual')
               AS payload
    FROM alert a
    JOIN warning w ON w.id = :warning_id
    JOIN grid g ON g.id = a.grid_id
    WHERE a.id = ANY(:alert_ids)
), message AS (
    SELECT about.alert_id, u.id AS app_user_id, ch.channel,
           about.key_head || ':' || u.id || ':' || ch.channel AS idempotency_key, about.payload
    FROM about
    JOIN app_user_grid ug ON ug.grid_id = about.grid_id
    JOIN app_user u ON u.id = ug.app_user_id AND u.active
    CROSS JOIN LATERAL (VALUES ('feed'), (CASE WHEN u.phone IS NOT NULL THEN 'sms' END),
                               (CASE WHEN u.email IS NOT NULL THEN 'email' END)) ch(channel)
    WHERE ch.channel IS NOT NULL
    UNION ALL
    SELECT about.alert_id, NULL, team.channel,
           about.key_head || ':' || 'team' || ':' || team.channel, about.payload
    FROM about
    CROSS JOIN LATERAL (
        SELECT DISTINCT route ->> 'channel' AS channel
        FROM jsonb_array_elements(CAST(:routes AS jsonb)) route
        WHERE starts_with(about.code, route ->> 'prefix')
    ) team
)
INSERT INTO outbox (alert_id, app_user_id, channel, idempotency_key, kind, payload)
SELECT alert_id, app_user_id, channel, idempotency_key, :kind, payload FROM message
ON CONFLICT (idempotency_key) DO NOTHING
