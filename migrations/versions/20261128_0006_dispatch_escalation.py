"""The dispatcher's due index and wake-up NOTIFY; escalation of unacknowledged alerts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "role IN ('command', 'grid_head', 'grid_worker', 'planner', 'admin')"
NEW_ROLES = "role IN ('command', 'grid_head', 'grid_worker', 'planner', 'admin', 'unit_head')"

# One NOTIFY per statement that queues rows: an idle dispatcher wakes at once.
WAKE = """
CREATE FUNCTION outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridgis_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_wake AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_wake();
"""


def upgrade() -> None:
    op.create_index('ix_outbox_due', 'outbox', ['next_attempt_at'],
                    postgresql_where=sa.text("state IN ('queued', 'failed', 'sending')"))
    op.drop_index('ix_outbox_next_attempt_at', table_name='outbox')
    op.execute(WAKE)
    op.drop_constraint(op.f('ck_app_user_role'), 'app_user', type_='check')
    op.create_check_constraint(op.f('ck_app_user_role'), 'app_user', NEW_ROLES)
    op.create_table(
        'app_user_unit',
        sa.Column('app_user_id', sa.Integer(), nullable=False),
        sa.Column('admin_unit_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['admin_unit_id'], ['admin_unit.id'],
                                name=op.f('fk_app_user_unit_admin_unit_id_admin_unit')),
        sa.ForeignKeyConstraint(['app_user_id'], ['app_user.id'], ondelete='CASCADE',
                                name=op.f('fk_app_user_unit_app_user_id_app_user')),
        sa.PrimaryKeyConstraint('app_user_id', 'admin_unit_id', name=op.f('pk_app_user_unit')),
        comment='The communities and streets a unit head answers for (escalations reach them).',
    )
    op.create_index(op.f('ix_app_user_unit_admin_unit_id'), 'app_user_unit', ['admin_unit_id'])
    op.add_column('alert', sa.Column('ack_due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('alert', sa.Column('escalation_level', sa.Integer(), server_default='0',
                                     nullable=False))
    op.add_column('alert', sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_alert_ack_due', 'alert', ['ack_due_at'],
                    postgresql_where=sa.text("state = 'active' AND acknowledged_at IS NULL"))


def downgrade() -> None:
    op.drop_index('ix_alert_ack_due', table_name='alert')
    op.drop_column('alert', 'escalated_at')
    op.drop_column('alert', 'escalation_level')
    op.drop_column('alert', 'ack_due_at')
    op.drop_index(op.f('ix_app_user_unit_admin_unit_id'), table_name='app_user_unit')
    op.drop_table('app_user_unit')
    op.execute("DELETE FROM app_user WHERE role = 'unit_head'")
    op.drop_constraint(op.f('ck_app_user_role'), 'app_user', type_='check')
    op.create_check_constraint(op.f('ck_app_user_role'), 'app_user', OLD_ROLES)
    op.execute("DROP TRIGGER outbox_wake ON outbox; DROP FUNCTION outbox_wake()")
    op.create_index('ix_outbox_next_attempt_at', 'outbox', ['next_attempt_at'])
    op.drop_index('ix_outbox_due', table_name='outbox')
