"""Delivery in order per recipient: a message waits while an older one to the same recipient
on the same channel is still to go (a channel down for minutes must not deliver an alert's
cancel before the alert). ``outbox_recipient(app_user_id, payload)`` names the recipient: a
person, or a grid's team robot; the index finds an older waiting message at once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 22:00:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECIPIENT = """
CREATE FUNCTION outbox_recipient(app_user_id integer, payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce('user:' || app_user_id, 'grid:' || (payload ->> 'grid'))
$$
"""


def upgrade() -> None:
    op.execute(RECIPIENT)
    op.execute("CREATE INDEX ix_outbox_waiting_recipient ON outbox "
               "(channel, outbox_recipient(app_user_id, payload), id) "
               "WHERE state IN ('queued', 'failed', 'sending')")


def downgrade() -> None:
    op.execute("DROP INDEX ix_outbox_waiting_recipient")
    op.execute("DROP FUNCTION outbox_recipient(integer, jsonb)")
