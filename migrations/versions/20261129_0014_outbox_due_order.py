"""The dispatcher's claims read the due rows in (next_attempt_at, id) order: the indexes hold
both, so a claim of a batch under a backlog of thousands reads the batch's rows from an index
instead of sorting the backlog (2.4 against 25 ms per claim at 5,000 waiting rows). The feed
has its own: its claim no longer steps over the other channels' backlog (a warning's 4,000
feed rows behind its 8,000 SMS).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 00:40:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "WHERE state IN ('queued', 'failed', 'sending')"


def upgrade() -> None:
    op.execute("DROP INDEX ix_outbox_due")
    op.execute(f"CREATE INDEX ix_outbox_due ON outbox (next_attempt_at, id) {WAITING}")
    op.execute("CREATE INDEX ix_outbox_feed_due ON outbox (next_attempt_at, id) "
               f"{WAITING} AND channel = 'feed'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_outbox_feed_due")
    op.execute("DROP INDEX ix_outbox_due")
    op.execute(f"CREATE INDEX ix_outbox_due ON outbox (next_attempt_at) {WAITING}")
