"""The audit log: who read or changed what, and when. Written in the caller's transaction."""

from typing import Any

from sqlalchemy.orm import Session

from gridgis.models import AppUser, AuditLog


def record(session: Session, user: AppUser | None, action: str, entity: str,
           entity_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Add one audit entry; it is committed with the caller's work, or not at all."""
    session.add(AuditLog(app_user_id=user.id if user else None,
                         username=user.username if user else None,
                         action=action, entity=entity, entity_id=entity_id, detail=detail))
