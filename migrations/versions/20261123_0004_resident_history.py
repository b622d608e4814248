"""Resident history: one row per registration, change, move out and move in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:47:36.372950

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('resident_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('building_id', sa.Integer(), nullable=False),
    sa.Column('household_code', sa.Text(), nullable=False),
    sa.Column('app_user_id', sa.Integer(), nullable=True),
    sa.Column('changes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("kind IN ('registered', 'updated', 'moved_out', 'moved_in')", name=op.f('ck_resident_event_kind')),
    sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], name=op.f('fk_resident_event_app_user_id_app_user')),
    sa.ForeignKeyConstraint(['building_id'], ['building.id'], name=op.f('fk_resident_event_building_id_building')),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_resident_event_resident_id_resident')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resident_event'))
    )
    op.create_index(op.f('ix_resident_event_resident_id'), 'resident_event', ['resident_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_resident_event_resident_id'), table_name='resident_event')
    op.drop_table('resident_event')
