-- The caller of a tile request: one row (the user's id) when %(token_digest)s is the SHA-256
-- of a live token (unexpired, unrevoked) of an active user, none otherwise. The tile
-- statement is this as a CTE, the tile query read only for its row: no row is 401.
SELECT app_user.id
FROM auth_token
JOIN app_user ON app_user.id = auth_token.app_user_id
WHERE auth_token.token_hash = %(token_digest)s
  AND auth_token.revoked_at IS NULL
  AND auth_token.expires_at > now()
  AND app_user.active
