"""Issuing a warning: one transaction from the message to every alert and outbox row.

An Alert reaches the grids its areas touch. An Update (CAP ``references``, or the next
advisory of the same storm) is compared with the warning it follows: grids newly reached get
an alert; grids still reached keep their alert row, so its acknowledgement and checklist
stay, and are told only if their tier, gale ETA or the warning's level changed; grids no
longer reached are stood down. A Cancel stands down every grid of the chain. A dry run does
the same inside a savepoint and rolls it back, so it reports exactly what a real run writes.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from geoalchemy2.shape import from_shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridgis import auth, spatial
from gridgis.alerts import checklists, feed, intake, schemas, targeting
from gridgis.alerts.models import Alert, Warning, WarningArea
from gridgis.errors import Conflict, InvalidInput
from gridgis.models import AppUser

log = logging.getLogger(__name__)

ISSUER_ROLES = ("command", "admin")


@dataclass(frozen=True)
class Changes:
    added: list[int]
    changed: list[int]
    unchanged: list[int]
    stood_down: list[int]


def issue(session: Session, user: AppUser | None, incoming: intake.Incoming,
          min_share: float = 0.0, dry_run: bool = False) -> schemas.IssueResult:
    """Store a warning and alert (or re-alert, or stand down) its grids; return what it did.

    ``user`` None is the command line or a drill, acting with the database's credentials.
    """
    if user is not None:
        auth.require_role(user, *ISSUER_ROLES)
    rank = incoming.level_rank
    if session.scalar(select(Warning.id).where(Warning.identifier == incoming.identifier)):
        raise Conflict(f"warning {incoming.identifier} was received already")
    previous = _followed(session, incoming)
    savepoint = session.begin_nested()
    warning = Warning(
        identifier=incoming.identifier, sender=incoming.sender, sent=incoming.sent,
        source=incoming.source, msg_type=incoming.msg_type, status=incoming.status,
        level=incoming.level, level_rank=rank, event=incoming.event,
        headline=incoming.headline, references=list(incoming.references),
        follows_id=previous.id if previous else None,
        storm_id=incoming.storm_id or (previous.storm_id if previous else None),
        document=incoming.document, app_user_id=user.id if user else None,
    )
    session.add(warning)
    session.flush()
    session.add_all(WarningArea(warning_id=warning.id, tier=a.tier, description=a.description,
                                valid_at=a.valid_at, area=from_shape(a.geometry, spatial.SRID))
                    for a in incoming.areas)
    session.flush()
    targets = ([] if incoming.msg_type == "cancel"
               else targeting.find_targets(session, warning.id, min_share))
    changes = _apply(session, warning, previous, targets, min_share)
    # The command centre's maps redraw at once (a NOTIFY at commit; none for a dry run).
    feed.publish(session, None, {"kind": "warning", "warning": warning.identifier,
                                 "level": warning.level, "grids": len(targets)})
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    return summarise(None if dry_run else incoming.identifier, dry_run, targets, changes)


def issue_committed(session: Session, user: AppUser | None, incoming: intake.Incoming,
                    min_share: float = 0.0, dry_run: bool = False,
                    on_accepted: Callable[[schemas.IssueResult], None] | None = None
                    ) -> schemas.IssueResult:
    """Issue a warning and commit it, then make its checklists' items and commit those: the
    alerts and their messages go out before the slower checklist work is done. The warning
    is accepted once the first commit is done: a failure making the items is logged and
    said in the result (the dispatcher's sweep makes them), never an error, for a retried
    warning would be refused as received already, or sent twice. ``on_accepted`` is called
    with the result inside the first transaction (to keep the answer for a retry)."""
    result = issue(session, user, incoming, min_share=min_share, dry_run=dry_run)
    if on_accepted is not None and not dry_run:
        on_accepted(result)
    session.commit()
    if result.identifier:
        try:
            checklists.make_items(session, result.identifier)
            session.commit()
        except Exception:  # the warning stands whatever happens here
            session.rollback()
            log.exception("checklist items of %s not made; the dispatcher will make them",
                          result.identifier)
            result.checklists_made = False
    return result


def checklists_made(session: Session, identifier: str) -> bool:
    """Return whether every checklist of the warning has its items made."""
    return not session.scalar(text(
        "SELECT EXISTS (SELECT FROM checklist c JOIN alert a ON a.id = c.alert_id "
        "JOIN warning w ON w.id = a.warning_id WHERE w.identifier = :w AND c.made_at IS NULL)"),
        {"w": identifier})


def _followed(session: Session, incoming: intake.Incoming) -> Warning | None:
    """Return the warning an Update or Cancel follows (the newest it references)."""
    if incoming.msg_type == "alert":
        return None
    if not incoming.references:
        raise InvalidInput(f"an {incoming.msg_type} must reference the warning it follows")
    found = session.scalars(select(Warning).where(Warning.identifier.in_(incoming.references))
                            .order_by(Warning.sent.desc(), Warning.id.desc())).first()
    if found is None:
        raise InvalidInput(f"{incoming.msg_type} references unknown warning(s): "
                           f"{', '.join(incoming.references)}")
    return found


def _apply(session: Session, warning: Warning, previous: Warning | None,
           targets: list[targeting.Target], min_share: float) -> Changes:
    """Write the alerts of a new warning, or carry the previous warning's over."""
    if previous is None:
        added = targeting.create_alerts(session, warning.id, targets)
        checklists.open_checklists(session, added)
        return Changes(added, [], [], [])
    active = {a.grid_id: a for a in session.scalars(
        select(Alert).where(Alert.warning_id == previous.id, Alert.state == "active"))}
    reached = {t.grid_id: t for t in targets}
    changed: list[int] = []
    unchanged: list[int] = []
    level_moved = previous.level_rank != warning.level_rank
    for grid_id, alert in active.items():
        target = reached.get(grid_id)
        if target is None:
            continue
        moved = level_moved or alert.tier != target.tier or alert.gale_eta != target.gale_eta
        (changed if moved else unchanged).append(alert.id)
        alert.warning_id, alert.tier, alert.gale_eta = warning.id, target.tier, target.gale_eta
        alert.coverage = target.share
        alert.version = alert.version + 1
    stood_down = []
    for grid_id, alert in active.items():
        if grid_id not in reached:
            alert.warning_id, alert.state = warning.id, "stood_down"
            alert.version = alert.version + 1
            stood_down.append(alert.id)
    session.flush()
    new_grids = [g for g in reached if g not in active]
    added = targeting.insert_alerts(session, warning.id, [reached[g] for g in new_grids])
    targeting.queue_messages(session, warning.id, added, "alert")
    targeting.queue_messages(session, warning.id, changed, "update")
    kind = "cancel" if warning.msg_type == "cancel" else "stand_down"
    targeting.queue_messages(session, warning.id, stood_down, kind)
    checklists.open_checklists(session, added + changed)  # changed: a new tier, ETA or level
    checklists.stand_down(session, stood_down)
    if stood_down:  # grids retired under this warning: their teams leave them now
        session.execute(text(
            "DELETE FROM app_user_grid ug USING grid g WHERE g.id = ug.grid_id "
            "AND g.id IN (SELECT grid_id FROM alert WHERE id = ANY(:a)) "
            "AND g.retired_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM alert x "
            "WHERE x.grid_id = g.id AND x.state = 'active')"), {"a": stood_down})
    return Changes(added, changed, unchanged, stood_down)


def summarise(identifier: str | None, dry_run: bool, targets: list[targeting.Target],
              changes: Changes) -> schemas.IssueResult:
    """Return the answer for an issued (or dry-run) warning."""
    residents = sum(t.residents for t in targets)
    vulnerable = sum(t.vulnerable for t in targets)
    verb = "would reach" if dry_run else "reached"
    message = f"{verb} {len(targets)} grids, {residents:,} residents, {vulnerable:,} vulnerable"
    if not targets and not changes.stood_down:
        message = f"{verb} 0 grids: its areas lie outside the territory"
    if changes.stood_down:
        message += f"; {len(changes.stood_down)} grids stood down"
    return schemas.IssueResult(
        identifier=identifier, dry_run=dry_run, grids=len(targets), residents=residents,
        vulnerable=vulnerable, message=message, added=len(changes.added),
        changed=len(changes.changed), unchanged=len(changes.unchanged),
        stood_down=len(changes.stood_down),
        targets=[schemas.TargetOut(**{k: getattr(t, k) for k in schemas.TargetOut.model_fields})
                 for t in targets],
    )
