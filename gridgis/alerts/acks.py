"""Acknowledgement of alerts by their grid team, and the delivery history of alerts.

A grid head or worker acknowledges the alert of one of their grids (an admin may for any):
the alert's ``version`` guards it like an If-Match edit, and a second acknowledgement
returns the first unchanged. The command centre sees every alert, a grid team its own.
"""

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridgis import audit, auth
from gridgis.alerts import feed
from gridgis.alerts.models import Alert, Outbox
from gridgis.alerts.models import Warning as WarningRow
from gridgis.errors import Forbidden, NotFound, StaleVersion
from gridgis.layers.models import Grid
from gridgis.models import AppUser

ACK_ROLES = (*auth.GRID_ROLES, "admin")
WATCH_ROLES = ("command", "admin")


class Delivery(BaseModel):
    """One outbox row of an alert: a message to one person on one channel."""

    channel: str
    recipient: str | None
    kind: str
    state: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None


class AlertRecord(BaseModel):
    """An alert as the command centre and the grid team follow it."""

    id: int
    warning: str
    level: str
    grid: str
    grid_name: str
    tier: str
    state: str
    gale_eta: datetime | None
    residents: int
    vulnerable: int
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_due_at: datetime | None  # when it escalates next, if still unacknowledged
    escalation_level: int  # 0 none, 1 told the community's heads, 2 the street and command
    escalated_at: datetime | None
    version: int
    deliveries: dict[str, dict[str, int]]  # channel -> outbox state -> rows


class AlertDetail(AlertRecord):
    outbox: list[Delivery]


def acknowledge(session: Session, user: AppUser, alert_id: int, version: int) -> Alert:
    """Return the alert acknowledged by ``user`` (unchanged if it already was).

    Raises NotFound for an alert outside the user's grids, Forbidden for a role that does not
    acknowledge, StaleVersion (with the alert as it is) when ``version`` is not current.
    """
    alert = session.get(Alert, alert_id, with_for_update=True,  # one acknowledgement wins
                        populate_existing=True)
    grids = _grid_scope(session, user)
    if alert is None or (grids is not None and alert.grid_id not in grids):
        raise NotFound(f"no alert {alert_id} among the alerts of your grids")
    if user.role not in ACK_ROLES:
        raise Forbidden(f"the {user.role} role watches acknowledgements; the grid team gives "
                        f"them")
    if alert.acknowledged_at is not None:
        return alert
    if alert.version != version:
        current = _records(session, None, alert_id=alert_id)[0]
        raise StaleVersion(f"alert {alert_id} is at version {alert.version}, not {version}",
                           current=current.model_dump(mode="json"))
    alert.acknowledged_at = datetime.now(UTC)
    alert.acknowledged_by = user.id
    alert.version += 1
    session.flush()
    record = _records(session, None, alert_id=alert_id)[0]
    audit.record(session, user, "acknowledge", "alert", str(alert_id),
                 {"grid": record.grid, "warning": record.warning, "version": record.version})
    feed.publish(session, None, {
        "kind": "ack", "alert": record.id, "grid": record.grid, "warning": record.warning,
        "tier": record.tier, "level": record.level, "gale_eta": record.gale_eta,
        "version": record.version, "acknowledged_at": record.acknowledged_at,
        "by": record.acknowledged_by,
    })
    return alert


def alert_history(session: Session, user: AppUser, warning_identifier: str | None = None,
                  grid_code: str | None = None, limit: int = 5000) -> list[AlertRecord]:
    """Return the alerts the user may see, soonest gale first, with delivery states."""
    return _records(session, _grid_scope(session, user), warning=warning_identifier,
                    grid=grid_code, limit=limit)


def read_alert(session: Session, user: AppUser, alert_id: int) -> AlertDetail:
    """Return one alert with each of its outbox rows; NotFound outside the user's grids."""
    found = _records(session, _grid_scope(session, user), alert_id=alert_id)
    if not found:
        raise NotFound(f"no alert {alert_id} among the alerts you may see")
    rows = session.execute(
        select(Outbox.channel, AppUser.username.label("recipient"), Outbox.kind, Outbox.state,
               Outbox.attempts, Outbox.sent_at, Outbox.last_error)
        .outerjoin(AppUser, AppUser.id == Outbox.app_user_id)
        .where(Outbox.alert_id == alert_id).order_by(Outbox.channel, Outbox.id)).mappings()
    return AlertDetail(**found[0].model_dump(), outbox=[Delivery(**row) for row in rows])


def _grid_scope(session: Session, user: AppUser) -> set[int] | None:
    """Return the grid ids whose alerts ``user`` sees, None for all; Forbidden for others."""
    if user.role in WATCH_ROLES:
        return None
    if user.role in (*auth.GRID_ROLES, auth.UNIT_ROLE):
        return auth.watched_grid_ids(session, user)
    raise Forbidden(f"the {user.role} role does not follow alerts")


def _records(session: Session, grids: set[int] | None, *, alert_id: int | None = None,
             warning: str | None = None, grid: str | None = None,
             limit: int = 5000) -> list[AlertRecord]:
    acker = AppUser.__table__.alias("acker")
    query = (
        select(Alert.id, WarningRow.identifier.label("warning"), WarningRow.level,
               Grid.code.label("grid"), Grid.name.label("grid_name"), Alert.tier, Alert.state,
               Alert.gale_eta, Alert.residents, Alert.vulnerable, Alert.created_at,
               Alert.acknowledged_at, acker.c.username.label("acknowledged_by"),
               Alert.ack_due_at, Alert.escalation_level, Alert.escalated_at, Alert.version)
        .join(WarningRow, WarningRow.id == Alert.warning_id)
        .join(Grid, Grid.id == Alert.grid_id)
        .outerjoin(acker, acker.c.id == Alert.acknowledged_by)
        .order_by(Alert.gale_eta.asc().nulls_last(), WarningRow.received_at.desc(), Grid.code)
        .limit(limit)
    )
    if grids is not None:
        query = query.where(Alert.grid_id.in_(grids))
    if alert_id is not None:
        query = query.where(Alert.id == alert_id)
    if warning is not None:
        query = query.where(WarningRow.identifier == warning)
    if grid is not None:
        query = query.where(Grid.code == grid)
    rows = session.execute(query).mappings().all()
    deliveries: dict[int, dict[str, dict[str, int]]] = {row["id"]: {} for row in rows}
    if rows:
        counts = session.execute(
            select(Outbox.alert_id, Outbox.channel, Outbox.state, func.count())
            .where(Outbox.alert_id.in_(list(deliveries)))
            .group_by(Outbox.alert_id, Outbox.channel, Outbox.state))
        for alert, channel, state, n in counts:
            deliveries[alert].setdefault(channel, {})[state] = n
    return [AlertRecord(**row, deliveries=deliveries[row["id"]]) for row in rows]
