"""Checklist items keep when they were made, so a roll-up can be read at any past moment.

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


def upgrade() -> None:
    op.add_column('checklist_item', sa.Column(
        'created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
        nullable=False))
    op.execute("UPDATE checklist_item i SET created_at = c.created_at "
               "FROM checklist c WHERE c.id = i.checklist_id")
    op.create_index('ix_checklist_event_checklist_at', 'checklist_event',
                    ['checklist_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_checklist_event_checklist_at', table_name='checklist_event')
    op.drop_column('checklist_item', 'created_at')
