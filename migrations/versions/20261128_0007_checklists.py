"""Evacuation checklists: one per alert, their items, and every change to an item.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 19:55:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        'checklist',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=False),
        sa.Column('grid_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.Text(), server_default='open', nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('unplaced', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in('state', ('open', 'closed', 'stood_down')),
                           name=op.f('ck_checklist_state')),
        sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], ondelete='CASCADE',
                                name=op.f('fk_checklist_alert_id_alert')),
        sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], name=op.f('fk_checklist_grid_id_grid')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist')),
        sa.UniqueConstraint('alert_id', name=op.f('uq_checklist_alert_id')),
    )
    op.create_index(op.f('ix_checklist_grid_id'), 'checklist', ['grid_id'])
    op.create_table(
        'checklist_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('checklist_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Text(), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=True),
        sa.Column('household_code', sa.Text(), nullable=True),
        sa.Column('building_id', sa.Integer(), nullable=True),
        sa.Column('shelter_id', sa.Integer(), nullable=True),
        sa.Column('station_id', sa.Integer(), nullable=True),
        sa.Column('people', sa.Integer(), server_default='0', nullable=False),
        sa.Column('household_size', sa.Integer(), server_default='0', nullable=False),
        sa.Column('needs', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
        sa.Column('distance_m', sa.Float(), nullable=True),
        sa.Column('state', sa.Text(), server_default='pending', nullable=False),
        sa.Column('stage', sa.Text(), nullable=True),
        sa.Column('head_count', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('updated_by', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False),
        sa.CheckConstraint(_in('kind', ('contact', 'transfer', 'inspect', 'open_shelter',
                                        'staff_station')), name=op.f('ck_checklist_item_kind')),
        sa.CheckConstraint(_in('state', ('pending', 'in_progress', 'done', 'unable',
                                         'not_needed')), name=op.f('ck_checklist_item_state')),
        sa.CheckConstraint("stage IS NULL OR " + _in('stage', (
            'to_transfer', 'left_home', 'checked_in', 'checked_out')),
            name=op.f('ck_checklist_item_stage')),
        sa.CheckConstraint('head_count IS NULL OR head_count >= 0',
                           name=op.f('ck_checklist_item_head_count')),
        sa.CheckConstraint("state <> 'unable' OR reason IS NOT NULL",
                           name=op.f('ck_checklist_item_unable_reason')),
        sa.ForeignKeyConstraint(['checklist_id'], ['checklist.id'], ondelete='CASCADE',
                                name=op.f('fk_checklist_item_checklist_id_checklist')),
        sa.ForeignKeyConstraint(['resident_id'], ['resident.id'],
                                name=op.f('fk_checklist_item_resident_id_resident')),
        sa.ForeignKeyConstraint(['building_id'], ['building.id'],
                                name=op.f('fk_checklist_item_building_id_building')),
        sa.ForeignKeyConstraint(['shelter_id'], ['shelter.id'],
                                name=op.f('fk_checklist_item_shelter_id_shelter')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'],
                                name=op.f('fk_checklist_item_station_id_station')),
        sa.ForeignKeyConstraint(['updated_by'], ['app_user.id'],
                                name=op.f('fk_checklist_item_updated_by_app_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_item')),
        sa.UniqueConstraint('checklist_id', 'kind', 'subject',
                            name='uq_checklist_item_subject'),
    )
    op.create_index(op.f('ix_checklist_item_checklist_id'), 'checklist_item', ['checklist_id'])
    op.create_index(op.f('ix_checklist_item_shelter_id'), 'checklist_item', ['shelter_id'])
    op.create_table(
        'checklist_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('checklist_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('app_user_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('stage', sa.Text(), nullable=True),
        sa.Column('head_count', sa.Integer(), nullable=True),
        sa.Column('shelter_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['item_id'], ['checklist_item.id'], ondelete='CASCADE',
                                name=op.f('fk_checklist_event_item_id_checklist_item')),
        sa.ForeignKeyConstraint(['checklist_id'], ['checklist.id'], ondelete='CASCADE',
                                name=op.f('fk_checklist_event_checklist_id_checklist')),
        sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'],
                                name=op.f('fk_checklist_event_app_user_id_app_user')),
        sa.ForeignKeyConstraint(['shelter_id'], ['shelter.id'],
                                name=op.f('fk_checklist_event_shelter_id_shelter')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_event')),
    )
    op.create_index(op.f('ix_checklist_event_item_id'), 'checklist_event', ['item_id'])
    op.create_index(op.f('ix_checklist_event_checklist_id'), 'checklist_event',
                    ['checklist_id'])


def downgrade() -> None:
    op.drop_table('checklist_event')
    op.drop_table('checklist_item')
    op.drop_table('checklist')
