"""One rule for "at risk": ``checklist_at_risk(items, remaining, due, made, at)``, read by the
checklist list, the roll-up and the map alike (three copies drifted: a finished checklist
past its due time was flagged).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 21:00:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# At risk at moment ``at``: work is left and either the due time has passed, or the share of
# work left is larger than the share of time left (from when the checklist was made).
AT_RISK = """
CREATE FUNCTION checklist_at_risk(items numeric, remaining numeric, due timestamptz,
                                  made timestamptz, at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT due IS NOT NULL AND items > 0 AND remaining > 0 AND (
        at >= due
        OR remaining / items > extract(epoch FROM due - at)
                               / greatest(extract(epoch FROM due - made), 1))
$$
"""


def upgrade() -> None:
    op.execute(AT_RISK)


def downgrade() -> None:
    op.execute("DROP FUNCTION checklist_at_risk(numeric, numeric, timestamptz, timestamptz, "
               "timestamptz)")
