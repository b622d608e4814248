"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` (a client
retrying after a lost answer, a server killed mid-request) gets the first answer back instead
of doing the work twice. The key row is written in the request's own transaction, so it
exists exactly when the work does.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 22:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'request_key',
        sa.Column('app_user_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('fingerprint', sa.Text(), nullable=False),
        sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], ondelete='CASCADE',
                                name=op.f('fk_request_key_app_user_id_app_user')),
        sa.PrimaryKeyConstraint('app_user_id', 'key', name=op.f('pk_request_key')),
    )


def downgrade() -> None:
    op.drop_table('request_key')
