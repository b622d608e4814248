"""Checklist items keep when they were made, so a roll-up can be read at any past moment;
checklists say when their items were made (``made_at``: they are made just after the
alerts commit, so the alerts go out first);
``warning_chain(identifier)``: the warnings of one chain (the first message, its updates, its
cancel), for the roll-up and the after-action report.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 19:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAIN_FUNCTION = """
CREATE FUNCTION warning_chain(chain_of text) RETURNS TABLE (warning_id integer)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up AS (
        SELECT id, follows_id FROM warning WHERE identifier = chain_of
        UNION ALL
        SELECT w.id, w.follows_id FROM warning w JOIN up ON w.id = up.follows_id
    ), chain AS (
        SELECT id FROM up WHERE follows_id IS NULL
        UNION ALL
        SELECT w.id FROM warning w JOIN chain ON w.follows_id = chain.id
    )
    SELECT id FROM chain
$$
"""


def upgrade() -> None:
    op.add_column('checklist_item', sa.Column(
        'created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
        nullable=False))
    op.execute("UPDATE checklist_item i SET created_at = c.created_at "
               "FROM checklist c WHERE c.id = i.checklist_id")
    op.add_column('checklist', sa.Column('made_at', sa.DateTime(timezone=True)))
    op.execute("UPDATE checklist SET made_at = created_at")
    op.create_index('ix_checklist_to_make', 'checklist', ['created_at'],
                    postgresql_where=sa.text("made_at IS NULL"))
    op.create_index('ix_checklist_event_checklist_at', 'checklist_event',
                    ['checklist_id', 'at'])
    op.execute(CHAIN_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION warning_chain(text)")
    op.drop_index('ix_checklist_event_checklist_at', table_name='checklist_event')
    op.drop_index('ix_checklist_to_make', table_name='checklist')
    op.drop_column('checklist', 'made_at')
    op.drop_column('checklist_item', 'created_at')
