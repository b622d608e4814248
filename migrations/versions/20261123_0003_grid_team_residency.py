"""Grid teams: a user's residency and whether they work part-time (Macau residents in Hengqin).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:22:30.984979

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('app_user', sa.Column('residency', sa.Text(), nullable=True))
    op.add_column('app_user', sa.Column('part_time', sa.Boolean(), server_default='false', nullable=False))
    op.create_check_constraint(
        op.f('ck_app_user_residency'), 'app_user',
        "residency IS NULL OR residency IN ('registered', 'migrant', 'macau', 'hongkong', 'foreign')",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint(op.f('ck_app_user_residency'), 'app_user', type_='check')
    op.drop_column('app_user', 'part_time')
    op.drop_column('app_user', 'residency')
