"""The dispatcher (``gridgis dispatch``): sends the outbox with leases, retries and rate limits.

Decision: a small loop over our own ``outbox`` table, not a PostgreSQL-backed job library such
as procrastinate. The outbox must exist anyway (written in the alert's transaction, read by
the command centre for delivery state and dead letters); a library adds a second queue with
the same facts in two places, and gives no guarantee we lack:

* Exactly once per key: ``outbox.idempotency_key`` is UNIQUE for all time; procrastinate's
  ``queueing_lock`` only refuses a second job while one is ``todo``. Neither makes the far
  side exactly-once: that takes the key sent along and receivers that drop repeats.
* Crash safety: our claim is a lease, taken over when it runs out; procrastinate leaves a
  killed worker's jobs ``doing`` until a periodic task of ours retries "stalled" jobs. Its
  sync connector has its own pool (the SQLAlchemy one is psycopg2 only), so a job could not
  be deferred in the alert's transaction: we would keep this outbox plus a relay into it.
* Ops and schema: one process and one table operators already query; procrastinate adds its
  tables, worker heartbeats, an async runtime, and plain SQL migrations tracked beside
  Alembic (with pre/post steps on upgrades).

The loop: due rows (``queued``/``failed`` with ``next_attempt_at <= now()``, and ``sending``
rows whose lease ran out) with no older row to the same recipient on the same channel still
to go (so each recipient gets its messages in order, however long a channel is down; feed
rows go in id order in each batch) are claimed ``FOR UPDATE SKIP LOCKED``, set ``sending`` with
``attempts + 1`` and a lease (``next_attempt_at`` = now + lease), sent on a thread pool
through their channel's token bucket, then marked ``sent`` (a batch per statement), or
``failed`` with exponential backoff and jitter, or ``dead`` after ``dispatch_max_attempts``
or a failure no retry mends. Each write after the claim is guarded by (id, attempts, state
'sending'): a dispatcher whose lease was taken over changes nothing. Dispatchers can run side
by side; rate limits are per process. The live feed needs no lease: a batch of its rows is
taken, NOTIFYed and marked ``sent`` in one transaction (``send_feed``), in id order.

Guarantee: at-least-once sending (a crash between sending and marking sends again once the
lease runs out) with the row's idempotency key on every send; receivers that drop a key seen
before make it exactly one message per key at the receiver. The feed's NOTIFY commits with
the row's mark, so it goes out once; its event id is the key, for the rare repeat after a
database crash. SIGTERM/SIGINT stop claiming and let sends under way finish; ``--once``
sends what is due and exits.
"""

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gridgis.alerts import channels, checklists, dead_letters, escalation
from gridgis.alerts.channels import Message, SendFailed
from gridgis.alerts.pacing import RateLimits, backoff_seconds
from gridgis.alerts.wakeup import idle, listening, stopping_on_signals
from gridgis.errors import InvalidInput
from gridgis.settings import Settings, get_settings

log = logging.getLogger("gridgis.dispatch")
FEED_BATCH = 250  # feed rows taken, NOTIFYed (one statement) and marked sent in one transaction
FEED_TURN_S = 1.0  # the feed's turn in the loop, at most
ERROR_CHARS = 500
ESCALATE_EVERY_S = 1.0  # how often overdue acknowledgements and dead leases are looked for
MAKE_EVERY_S = 30.0  # how often checklists left without items (a request died) are made
MAKE_AT_ONCE = 500  # checklists a sweep makes, at most

# The dispatcher's own writes need not wait for the WAL flush: a database crash that forgets a
# claim or a mark only makes a message go out again, and its receiver drops the repeat.
ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
REAP_SQL = text("""
UPDATE outbox SET state = 'dead',
       last_error = concat_ws('; ', last_error, 'lease ran out on the last attempt')
WHERE state = 'sending' AND next_attempt_at <= now() AND attempts >= :max_attempts
""")
# A message is due when queued or failed and its time has come, or sending and its lease ran
# out; not when its lease ran out on its last attempt (the reap marks those dead, once a
# second).
DUE = """state IN ('queued', 'failed', 'sending') AND next_attempt_at <= now()
      AND (state <> 'sending' OR attempts < :max_attempts)"""
# What a claimed (or taken) row is sent with: the row, and its recipient's phone and address.
MESSAGE = """
    FROM due WHERE o.id = due.id
    RETURNING o.id, o.channel, o.kind, o.idempotency_key, o.payload, o.attempts, o.alert_id,
              o.app_user_id
)
SELECT m.*, u.phone, u.email FROM messages m LEFT JOIN app_user u ON u.id = m.app_user_id
ORDER BY m.id"""
CLAIMED = """messages AS (
    UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1,
           next_attempt_at = now() + make_interval(secs => :lease)""" + MESSAGE
# The feed's due rows, in order, from its own partial index (migration 0014) whatever backlog
# the other channels hold: a warning's 4,000 feed rows behind 8,000 SMS took 80 ms a claim.
FEED_DUE = f"""due AS (
    SELECT id FROM outbox
    WHERE channel = 'feed' AND {DUE}
    ORDER BY next_attempt_at, id LIMIT :limit
    FOR UPDATE SKIP LOCKED
)"""
CLAIM_SQL = text(f"""
WITH heads AS MATERIALIZED (  -- each recipient's oldest message still to go, per channel
    SELECT DISTINCT ON (channel, outbox_recipient(app_user_id, payload)) id
    FROM outbox
    WHERE state IN ('queued', 'failed', 'sending') AND channel <> 'feed'
      AND (CAST(:only AS text[]) IS NULL OR channel = ANY(CAST(:only AS text[])))
      AND channel <> ALL(CAST(:skip AS text[]))
    ORDER BY channel, outbox_recipient(app_user_id, payload), id
), due AS (
    SELECT id FROM outbox
    WHERE {DUE}
      AND (CAST(:only AS text[]) IS NULL OR channel = ANY(CAST(:only AS text[])))
      AND channel <> ALL(CAST(:skip AS text[]))
      AND (channel = 'feed' OR id IN (SELECT id FROM heads))  -- in order per recipient
    ORDER BY next_attempt_at, id LIMIT :limit
    FOR UPDATE SKIP LOCKED
), {CLAIMED}
""")
# Why heads are found set-wise, once per claim: a correlated "no older message waiting"
# check per candidate was planned as a scan of the waiting rows per candidate when the
# outbox's statistics still said it was empty (its usual state): 120 s for one claim over a
# 10,000-message backlog (bench/delivery.py found it). Finding the heads is one pass over
# the waiting rows, whatever the statistics say.
FEED_CLAIM_SQL = text(f"WITH {FEED_DUE}, {CLAIMED}")
# The feed in one transaction: its due rows are taken and marked sent, their NOTIFYs queued
# and all of it committed at once, so the events leave exactly when their rows say sent, and
# a dispatcher dying in between leaves the rows as they were (no lease to wait out).
FEED_TAKE_SQL = text(f"""WITH {FEED_DUE}, messages AS (
    UPDATE outbox o SET state = 'sent', sent_at = now(), attempts = o.attempts + 1""" + MESSAGE)
SENT_SQL = text("""
UPDATE outbox o SET state = 'sent', sent_at = now()
FROM unnest(CAST(:ids AS int[]), CAST(:attempts AS int[])) AS c(id, attempts)
WHERE o.id = c.id AND o.attempts = c.attempts AND o.state = 'sending'
""")
FAILED_SQL = text("""
UPDATE outbox SET state = :state, last_error = :error,
       next_attempt_at = now() + make_interval(secs => :delay)
WHERE id = :id AND attempts = :attempts AND state = 'sending'
""")
RELEASE_SQL = text("""
UPDATE outbox SET state = CASE WHEN attempts > 1 THEN 'failed' ELSE 'queued' END,
       attempts = attempts - 1, next_attempt_at = now() + make_interval(secs => :delay)
WHERE id = :id AND attempts = :attempts AND state = 'sending'
""")
Outcome = tuple[str, Message]  # (delivered | sent | failed | dead | released | unrecorded, row)


@dataclass
class Tally:
    """What a run did. ``unrecorded``: sent or not, the outcome could not be written (lease
    taken over, database down); the row is claimed again when its lease runs out."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0  # handed back untried: stopping, or its rate-limit slot is later
    unrecorded: int = 0
    seconds: float = 0.0

    def add(self, outcome: str, count: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + count)


@dataclass(frozen=True)
class _Run:
    config: Settings
    engine: Engine
    senders: dict[str, channels.Sender]
    limits: RateLimits
    stop: threading.Event


def claim(engine: Engine, config: Settings, limit: int, only: list[str] | None = None,
          skip: tuple[str, ...] = ()) -> list[Message]:
    """Mark up to ``limit`` due rows ``sending`` under a lease and return them."""
    params = {"limit": limit, "lease": config.dispatch_lease_seconds,
              "max_attempts": config.dispatch_max_attempts}
    with Session(engine) as session:
        session.execute(ASYNC_COMMIT)
        if only == ["feed"]:
            rows = session.execute(FEED_CLAIM_SQL, params)
        else:
            rows = session.execute(CLAIM_SQL, {**params, "only": only, "skip": list(skip)})
        messages = [Message(**row) for row in rows.mappings()]
        session.commit()
    return messages


def reap(engine: Engine, config: Settings) -> int:
    """Mark dead the messages whose lease ran out on their last attempt; return how many."""
    with Session(engine) as session:
        session.execute(ASYNC_COMMIT)
        result = session.execute(REAP_SQL, {"max_attempts": config.dispatch_max_attempts})
        session.commit()
    return int(getattr(result, "rowcount", 0))


def mark_sent(session: Session, messages: list[Message]) -> int:
    """Mark rows sent if their lease is still ours; return how many were."""
    session.execute(ASYNC_COMMIT)
    result = session.execute(SENT_SQL, {"ids": [m.id for m in messages],
                                        "attempts": [m.attempts for m in messages]})
    return int(getattr(result, "rowcount", 0))


def _write(engine: Engine, statement: Any, params: dict[str, Any]) -> None:
    with Session(engine) as session:
        session.execute(ASYNC_COMMIT)
        session.execute(statement, params)
        session.commit()


def _fail(run: _Run, message: Message, error: str, permanent: bool) -> str:
    config = run.config
    dead = permanent or message.attempts >= config.dispatch_max_attempts
    delay = 0.0 if dead else backoff_seconds(message.attempts, config.dispatch_backoff_seconds,
                                             config.dispatch_backoff_max_seconds)
    state = "dead" if dead else "failed"
    log.warning("outbox %s (%s) attempt %s %s: %s", message.id, message.channel,
                message.attempts, state, error)
    _write(run.engine, FAILED_SQL, {"state": state, "error": error[:ERROR_CHARS], "delay": delay,
                                    "id": message.id, "attempts": message.attempts})
    return state


def deliver(run: _Run, message: Message) -> str:
    """Send one claimed message; return ``delivered`` (for the caller to mark sent) or the
    outcome already written: sent (the feed), failed, dead, released, unrecorded."""
    sender = run.senders.get(message.channel)
    try:
        withheld = channels.withheld_reason(message)
        if withheld:
            raise SendFailed(withheld, permanent=True)
        if sender is None:
            raise SendFailed(f"unknown channel {message.channel}", permanent=True)
        later = run.limits.admit(message.id, message.channel, sender.rate_key(message), run.stop)
        if later is not None:
            _write(run.engine, RELEASE_SQL, {"id": message.id, "attempts": message.attempts,
                                             "delay": later})
            return "released"
        with Session(run.engine) as session:
            sender.send(message, session)  # the feed's NOTIFY joins this transaction
            if not sender.transactional:
                return "delivered"
            if not mark_sent(session, [message]):
                return "unrecorded"  # the lease was taken over: no NOTIFY, the holder sends
            session.commit()
        return "sent"
    except SendFailed as exc:
        return _fail(run, message, str(exc), exc.permanent)
    except Exception as exc:  # a bug or the database: retry; exception text may hold a URL
        log.debug("outbox %s failed", message.id, exc_info=True)
        return _fail(run, message, f"unexpected {type(exc).__name__}", False)


def send_feed(run: _Run) -> list[Outcome]:
    """Send up to FEED_BATCH due feed messages in one transaction (``FEED_TAKE_SQL``);
    return their outcomes (none: nothing was due). When the batch cannot go as a whole (an
    event the feed refuses, an event that cannot be made, a message to withhold, a rate
    limit set for the feed), it is claimed under leases and sent one by one by ``deliver``,
    which records each message's own failure."""
    sender = run.senders["feed"]
    if not isinstance(sender, channels.FeedSender) or "feed" in run.config.dispatch_rates:
        return one_by_one(run)
    with Session(run.engine) as session:
        session.execute(ASYNC_COMMIT)
        rows = session.execute(FEED_TAKE_SQL, {"limit": FEED_BATCH,
                                               "max_attempts": run.config.dispatch_max_attempts})
        messages = [Message(**row) for row in rows.mappings()]
        if not messages:
            return []
        if any(channels.withheld_reason(message) for message in messages):
            session.rollback()
            return one_by_one(run)
        try:
            sender.send_many(messages, session)
        except SQLAlchemyError:
            raise  # the database: the loop tries again
        except Exception:  # SendFailed, or a bug making one event: each message alone
            log.debug("feed batch failed; one by one", exc_info=True)
            session.rollback()
        else:
            session.commit()
            return [("sent", message) for message in messages]
    return one_by_one(run)


def one_by_one(run: _Run) -> list[Outcome]:
    """Claim up to FEED_BATCH due feed messages under leases and send each alone."""
    claimed = claim(run.engine, run.config, FEED_BATCH, ["feed"])
    return [(deliver(run, message), message) for message in claimed]


def send_all_feed(run: _Run, tally: Tally) -> bool:
    """Send the due feed messages, a batch per transaction, until none is left or FEED_TURN_S
    has passed (a 20,000-grid warning's 40,000 feed rows take seconds: the other channels'
    claims and marks get their turn in between); return whether more may be due."""
    until = time.monotonic() + FEED_TURN_S
    while not run.stop.is_set():
        outcomes = send_feed(run)
        for outcome, _ in outcomes:
            tally.add(outcome)
        if len(outcomes) < FEED_BATCH:
            return False
        if time.monotonic() > until:
            return True
    return False


def _task(run: _Run, messages: list[Message]) -> list[Outcome]:
    try:
        return [(deliver(run, message), message) for message in messages]
    except Exception as exc:  # even writing the outcome failed: the lease will run out
        log.warning("recording a delivery failed (%s)", type(exc).__name__)
        return [("unrecorded", message) for message in messages]


def _record(engine: Engine, tally: Tally, done: Iterable[Future[list[Outcome]]]) -> None:
    """Count finished tasks' outcomes; mark what they delivered sent, in one statement."""
    delivered = []
    for future in done:
        for outcome, message in future.result():
            if outcome == "delivered":
                delivered.append(message)
            else:
                tally.add(outcome)
    if delivered:
        marked = 0
        try:
            with Session(engine) as session:
                marked = mark_sent(session, delivered)
                session.commit()
        except SQLAlchemyError as exc:  # sent, not marked: sent again after the lease
            log.warning("marking %d sent failed (%s)", len(delivered), type(exc).__name__)
        tally.add("sent", marked)
        tally.add("unrecorded", len(delivered) - marked)


def run_dispatcher(config: Settings | None = None, *, once: bool = False,
                   only: Iterable[str] | None = None, engine: Engine | None = None,
                   stop: threading.Event | None = None) -> Tally:
    """Send due outbox rows until ``stop`` (SIGTERM, SIGINT) or, with ``once``, until none
    is due; ``only`` names the channels to send. Return what was done."""
    from gridgis import db

    config = config or get_settings()
    engine = engine or db.get_engine()
    stop = stop or threading.Event()
    names = set(only or channels.CHANNELS)
    if unknown := names - set(channels.CHANNELS):
        raise InvalidInput(f"unknown channel(s): {', '.join(sorted(unknown))}")
    # Feed rows are sent in batches, each a transaction, from this thread (a batch of 250
    # takes ~25 ms); other rows are claimed a few at a time and sent on the pool, so none
    # waits long under its lease. Unknown channels come with the others, to go dead.
    others = None if only is None else sorted(names - {"feed"})
    tally, started, depth = Tally(), time.monotonic(), 2 * config.dispatch_concurrency
    with ExitStack() as stack:
        stack.enter_context(stopping_on_signals(stop))
        senders = stack.enter_context(channels.open_senders(config))
        pool = stack.enter_context(ThreadPoolExecutor(config.dispatch_concurrency, "dispatch"))
        wake = None if once else stack.enter_context(listening(engine))
        limits = RateLimits(config.dispatch_rates, min(1.0, config.dispatch_lease_seconds / 4))
        run = _Run(config, engine, senders, limits, stop)
        pending: set[Future[list[Outcome]]] = set()
        escalate_at = make_at = 0.0
        sweep: Future[int] | None = None  # making waiting checklists, beside the sends
        while not stop.is_set():
            feed_left = False
            try:  # never held back by the other channels' sends under way, nor they by it
                if time.monotonic() >= escalate_at:
                    reap(engine, config)
                    escalate_due(engine, config)
                    escalate_at = time.monotonic() + ESCALATE_EVERY_S
                feed_left = "feed" in names and send_all_feed(run, tally)
            except SQLAlchemyError as exc:
                if once:
                    raise
                log.warning("the feed or escalation failed (%s); trying again",
                            type(exc).__name__)
            if len(pending) <= config.dispatch_concurrency:
                try:
                    if time.monotonic() >= make_at and (sweep is None or sweep.done()):
                        sweep = pool.submit(make_waiting_checklists, engine)
                        make_at = time.monotonic() + MAKE_EVERY_S
                    if others != []:
                        claimed = claim(engine, config, depth - len(pending), others, ("feed",))
                        pending |= {pool.submit(_task, run, [m]) for m in claimed}
                except SQLAlchemyError as exc:
                    if once:
                        raise
                    log.warning("claiming failed (%s); trying again", type(exc).__name__)
            if once and not pending and not feed_left:
                break
            if pending:
                timeout = 0 if feed_left else config.dispatch_poll_seconds
                done, pending = wait(pending, timeout, FIRST_COMPLETED)
                _record(engine, tally, done)
            elif not feed_left:
                wake = idle(wake, stop, config.dispatch_poll_seconds)
        _record(engine, tally, wait(pending).done)  # stopping: let sends under way finish
    tally.seconds = time.monotonic() - started
    return tally


def make_waiting_checklists(engine: Engine) -> int:
    """Make the checklists whose items the request that opened them did not make (it died
    after committing the alerts, or failed); return how many. Never raises: the sends go
    on whatever happens here."""
    try:
        with Session(engine) as session:
            made = checklists.make_items(session, older_than_s=MAKE_EVERY_S,
                                         limit=MAKE_AT_ONCE)
            session.commit()
    except Exception:  # logged; the next sweep tries again
        log.exception("making waiting checklists failed; trying again in %.0f s", MAKE_EVERY_S)
        return 0
    if made:
        log.warning("made the items of %d checklists left waiting", made)
    return made


def escalate_due(engine: Engine, config: Settings) -> int:
    """Escalate the alerts whose acknowledgement is overdue (``gridgis.alerts.escalation``);
    return how many were."""
    total = 0
    while True:
        with Session(engine) as session:
            done = escalation.escalate(session, config)
            session.commit()
        if done.alerts:
            log.info("escalated %d unacknowledged alerts (%d messages)", done.alerts,
                     done.messages)
        total += done.alerts
        if done.alerts < escalation.BATCH:
            return total


def dispatch_command(
    once: Annotated[bool, typer.Option("--once", help="send what is due, then exit")] = False,
    channel: Annotated[list[str] | None, typer.Option(
        help="only this channel (feed, sms, email, webhook, wecom, dingtalk); repeatable")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="list dead letters, then exit")] = False,
    warning: Annotated[str | None, typer.Option(help="with --dead: of this warning only")] = None,
) -> None:
    """Send the outbox: claim due messages, send, retry with backoff; stop on SIGTERM."""
    from gridgis import db

    if dead:
        with Session(db.get_engine()) as session:
            for d in dead_letters.listed(session, warning):
                typer.echo(f"{d.outbox_id}\t{d.warning}\t{d.grid}\t{d.channel}\t"
                           f"{d.recipient or '-'}\t{d.attempts}\t{d.last_error}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tally = run_dispatcher(once=once, only=channel)
    typer.echo(f"dispatch: sent {tally.sent}, to retry {tally.failed}, dead {tally.dead}, "
               f"handed back {tally.released} in {tally.seconds:.1f} s")


if __name__ == "__main__":
    from gridgis.cli import friendly

    typer.run(friendly(dispatch_command))
