"""Channels: how one outbox message reaches its recipient, and the Chinese text it carries.

A sender takes a claimed outbox row (``Message``: the row and its recipient) and the session
whose transaction will mark the row sent. The in-app feed is a PostgreSQL NOTIFY in that
very transaction, so it goes out exactly when the row is marked sent. Every other channel
leaves the process and carries the row's idempotency key so that its receiver can drop a
second copy: HTTP ``Idempotency-Key`` header (and ``idempotency_key`` in the JSON body), the
SMTP ``Message-ID`` derived from the key, the SMS gateway's ``idempotency_key`` field. The
WeCom and DingTalk robots take no key: there the key is printed in the message, and a crash
between sending and marking sent can show a group the same message twice.

Secrets (robot URLs hold their keys, the DingTalk secret, the SMTP password, the SMS key)
never reach a log line or ``outbox.last_error``: failures are told by status code and
exception type, never by URL or exception text from the HTTP/SMTP libraries.
"""

import base64
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import string
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.orm import Session

from gridgis.alerts import advisory as advisories
from gridgis.errors import InvalidInput
from gridgis.settings import Settings, TeamRoute

# Channels that reach the public (cell broadcast, a public account, a public web page). An
# exercise or test (payload ``exercise`` true) is delivered to grid teams on every internal
# channel, marked 【演练】, and never to one of these. There is none yet: a public channel
# added later must be listed here, and the dispatcher then refuses exercises on it (dead,
# with the reason) as a last guard behind whatever queues messages.
PUBLIC_CHANNELS: frozenset[str] = frozenset()
TEAM_CHANNELS = ("webhook", "wecom", "dingtalk")
CHANNELS = ("feed", "sms", "email", *TEAM_CHANNELS)
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


class SendFailed(Exception):
    """A delivery that did not happen; ``permanent`` ones go dead at once (no retry helps)."""

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """A claimed outbox row and its recipient; ``attempts`` counts this one (the lease)."""

    id: int
    channel: str
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    alert_id: int | None = None
    app_user_id: int | None = None
    phone: str | None = None
    email: str | None = None

    @property
    def exercise(self) -> bool:
        return bool(self.payload.get("exercise"))


def withheld_reason(message: Message) -> str | None:
    """Return why the message must not be sent at all (an exercise on a public channel)."""
    if message.exercise and message.channel in PUBLIC_CHANNELS:
        return f"exercise withheld from public channel {message.channel}"
    return None


# ---- the text ---------------------------------------------------------------------------

def level_zh(level: object) -> str:
    """Return a warning level in Chinese: 橙色, 8号风球; unknown text as it is."""
    try:
        canonical = advisories.normalise_level(level)
    except InvalidInput:
        return str(level or "")
    if canonical.startswith("signal "):
        return f"{canonical.removeprefix('signal ')}号风球"
    return LEVEL_ZH.get(canonical, canonical)


def format_eta(value: object, zone: str) -> str | None:
    """Return an ISO time as 9月6日 02:00 in ``zone`` (None when there is none)."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value)).astimezone(ZoneInfo(zone))
    except ValueError:
        return str(value)
    return f"{at.month}月{at.day}日 {at:%H:%M}"


def text_fields(message: Message, zone: str) -> dict[str, str]:
    """Return the parts of a message's text: title, heading and subject (with 【演练】 for an
    exercise), grid, level, event, headline, eta, kind, key, and the whole ``text``."""
    payload = message.payload
    event = str(payload.get("event") or "台风")
    level = level_zh(payload.get("level"))
    title = f"{event}{level}" + ("信号" if level.endswith("风球") else "预警")
    grid = str(payload.get("grid") or "")
    headline = str(payload.get("headline") or "")
    eta = format_eta(payload.get("gale_eta"), zone)
    lead = f"{headline}，" if headline else ""
    gale = f"预计7级大风 {eta} 到达，" if eta else ""
    kind = message.kind or str(payload.get("kind") or "alert")
    if kind == "cancel":
        title = f"{event}预警解除"
        body = f"{event}预警已解除，请按指挥部安排做好善后并确认。"
    elif kind == "stand_down":
        title = f"{title}·本网格解除"
        body = f"{lead}本网格已不在预警范围内，请按指挥部安排并确认。"
    elif kind == "escalation":
        since = format_eta(payload.get("since"), zone) or ""
        who = "社区" if payload.get("step") == 1 else "街道"
        unit = f"网格 {grid} {payload.get('grid_name') or ''}".rstrip()
        body = f"{unit}自 {since} 收到的{title}仍未确认，请{who}立即联系网格长并督促落实。"
        title = f"{title}·未确认"
    elif kind == "update":
        title = f"{title}·更新"
        body = f"{lead}{gale}请查看更新后的转移清单并确认。"
    else:
        body = f"{lead}{gale}请立即查看转移清单并确认。"
    drill = "【演练】" if message.exercise else ""
    subject = f"{drill}【{title}】网格 {grid}"
    return {"title": title, "heading": f"{drill}{title}", "subject": subject, "grid": grid,
            "level": level, "event": event, "headline": headline, "eta": eta or "待定",
            "kind": kind, "key": message.idempotency_key, "text": f"{subject}：{body}"}


# ---- the senders ------------------------------------------------------------------------

class Sender(Protocol):
    # True: ``send`` only writes in ``session``, and the caller marks the row sent in the same
    # transaction. False: the message has left when ``send`` returns.
    transactional: bool

    def rate_key(self, message: Message) -> str:
        """Return the name of the token bucket this message draws from."""
        ...

    def send(self, message: Message, session: Session) -> None:
        """Deliver the message, or raise ``SendFailed``."""
        ...


class FeedSender:
    """The in-app live feed: ``gridgis.alerts.feed.publish`` (a NOTIFY in ``session``)."""

    transactional = True

    def __init__(self, config: Settings):
        self.zone = config.dispatch_timezone

    def rate_key(self, message: Message) -> str:
        return "feed"

    def send(self, message: Message, session: Session) -> None:
        self.send_many([message], session)

    def send_many(self, messages: list[Message], session: Session) -> None:
        """NOTIFY every message's event in one statement (a batch is one round trip)."""
        try:
            from gridgis.alerts import feed
        except ImportError as exc:  # the feed ships separately; retry until it is there
            raise SendFailed("the live feed (gridgis.alerts.feed) is not installed") from exc
        try:
            feed.publish_many(session, [(m.app_user_id, self.event(m)) for m in messages])
        except InvalidInput as exc:  # an event the feed refuses will not be taken later
            raise SendFailed(f"feed: {exc}", permanent=True) from None

    def event(self, message: Message) -> dict[str, Any]:
        """The feed event of a message: its payload, its key as the event id, and its text."""
        fields = text_fields(message, self.zone)
        return {**message.payload, "id": message.idempotency_key, "kind": fields["kind"],
                "alert": message.alert_id, "text": fields["text"]}


class HttpSender:
    """Posts JSON: generic webhooks, the WeCom and DingTalk group robots, the SMS gateway."""

    transactional = False

    def __init__(self, config: Settings, client: httpx.Client, channel: str):
        self.config, self.client, self.channel = config, client, channel

    def rate_key(self, message: Message) -> str:
        if self.channel in TEAM_CHANNELS:  # robots limit each robot (20 a minute): per route
            return f"{self.channel}:{self.route(message)[0]}"
        return self.channel

    def route(self, message: Message) -> tuple[str, TeamRoute]:
        """Return the longest grid-code prefix routed to this channel, and its route."""
        grid = str(message.payload.get("grid") or "")
        found = [(prefix, route) for prefix, route in self.config.team_webhooks.items()
                 if route.channel == self.channel and grid.startswith(prefix)]
        if not found:
            raise SendFailed(f"no {self.channel} route for grid {grid} "
                             "(GRIDGIS_TEAM_WEBHOOKS)", permanent=True)
        return max(found, key=lambda item: len(item[0]))

    def send(self, message: Message, session: Session) -> None:
        fields = text_fields(message, self.config.dispatch_timezone)
        key = message.idempotency_key
        headers = {"Idempotency-Key": key}
        params: dict[str, str] = {}
        if self.channel == "sms":
            url, body = self._sms(message, fields, headers)
        else:
            route = self.route(message)[1]
            url = route.url.get_secret_value()
            body = robot_body(self.channel, message, fields)
            if self.channel == "dingtalk" and route.secret is not None:
                params = dingtalk_sign(route.secret.get_secret_value())
        self._post(url, body, headers, params)

    def _sms(self, message: Message, fields: dict[str, str],
             headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
        if not self.config.sms_gateway_url:
            raise SendFailed("no SMS gateway (GRIDGIS_SMS_GATEWAY_URL)", permanent=True)
        if not message.phone:
            raise SendFailed("the recipient has no phone number", permanent=True)
        if self.config.sms_gateway_key is not None:
            headers["Authorization"] = f"Bearer {self.config.sms_gateway_key.get_secret_value()}"
        text = render_template(self.config.sms_template, fields)
        return self.config.sms_gateway_url, {"phone": message.phone, "message": text,
                                             "idempotency_key": message.idempotency_key}

    def _post(self, url: str, body: dict[str, Any], headers: dict[str, str],
              params: dict[str, str]) -> None:
        try:
            target = httpx.URL(url)  # its own query (robot key, access token) is kept
            answer = self.client.post(target.copy_merge_params(params) if params else target,
                                      json=body, headers=headers)
        except httpx.InvalidURL:
            raise SendFailed(f"{self.channel}: malformed URL", permanent=True) from None
        except httpx.TimeoutException as exc:
            raise SendFailed(f"{self.channel}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise SendFailed(f"{self.channel}: {type(exc).__name__}") from None
        status = answer.status_code
        if status >= 300:  # a redirect is not a delivery: the configured URL is wrong
            retry = status >= 500 or status in (408, 425, 429)
            raise SendFailed(f"{self.channel}: HTTP {status}", permanent=not retry)
        if self.channel in ("wecom", "dingtalk"):
            errcode = robot_errcode(answer)
            if errcode:  # the robots answer 200 with errcode; 45009/130101: too fast
                raise SendFailed(f"{self.channel}: errcode {errcode}")


class EmailSender:
    """E-mail over SMTP (STARTTLS when set); the Message-ID is derived from the key."""

    transactional = False

    def __init__(self, config: Settings):
        self.config = config

    def rate_key(self, message: Message) -> str:
        return "email"

    def send(self, message: Message, session: Session) -> None:
        config = self.config
        if not config.smtp_host:
            raise SendFailed("no SMTP server (GRIDGIS_SMTP_HOST)", permanent=True)
        if not message.email:
            raise SendFailed("the recipient has no e-mail address", permanent=True)
        fields = text_fields(message, config.dispatch_timezone)
        mail = EmailMessage()
        mail["From"], mail["To"] = config.smtp_from, message.email
        mail["Subject"] = fields["subject"]
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = message_id(message.idempotency_key, config.smtp_from)
        mail["X-Idempotency-Key"] = message.idempotency_key
        mail.set_content(f"{fields['text']}\n\n消息编号 {message.idempotency_key}\n")
        try:
            with smtplib.SMTP(config.smtp_host, config.smtp_port,
                              timeout=config.dispatch_timeout_seconds) as smtp:
                if config.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.smtp_user and config.smtp_password is not None:
                    smtp.login(config.smtp_user, config.smtp_password.get_secret_value())
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            raise SendFailed("smtp: recipient refused", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"smtp: {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600
                             and not isinstance(exc, smtplib.SMTPAuthenticationError)) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(f"smtp: {type(exc).__name__}") from None


def team_routes(config: Settings) -> str:
    """Return the team robot routes as JSON for SQL, ``[{"prefix", "channel"}]``: no URLs or
    secrets (targeting queues a team row per channel routed for a grid)."""
    return json.dumps([{"prefix": prefix, "channel": route.channel}
                       for prefix, route in config.team_webhooks.items()])


@contextmanager
def open_senders(config: Settings) -> Iterator[dict[str, Sender]]:
    """Yield a sender per channel name, sharing one HTTP client closed afterwards."""
    for name in ("httpx", "httpcore"):  # they log request URLs, and robot URLs hold keys
        logging.getLogger(name).setLevel(max(logging.WARNING,
                                             logging.getLogger(name).getEffectiveLevel()))
    client = httpx.Client(timeout=config.dispatch_timeout_seconds, follow_redirects=False,
                          limits=httpx.Limits(max_connections=4 * config.dispatch_concurrency))
    senders: dict[str, Sender] = {
        "feed": FeedSender(config), "email": EmailSender(config),
        **{name: HttpSender(config, client, name) for name in ("sms", *TEAM_CHANNELS)}}
    try:
        yield senders
    finally:
        client.close()


# ---- shapes and signatures --------------------------------------------------------------

def robot_body(channel: str, message: Message, fields: Mapping[str, str]) -> dict[str, Any]:
    """Return the JSON a generic webhook, a WeCom robot or a DingTalk robot is sent."""
    key = message.idempotency_key
    if channel == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": (
            f"**{fields['heading']}**\n{fields['text']}\n"
            f"> <font color=\"comment\">消息编号 {key}</font>")}}
    if channel == "dingtalk":
        return {"msgtype": "markdown", "markdown": {
            "title": fields["heading"],
            "text": f"#### {fields['heading']}\n\n{fields['text']}\n\n> 消息编号 {key}"}}
    return {**message.payload, "kind": fields["kind"], "idempotency_key": key,
            "text": fields["text"]}


def dingtalk_sign(secret: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """Return DingTalk's 加签 query: ``timestamp`` (ms) and ``sign``, the base64 HMAC-SHA256
    of ``"{timestamp}\\n{secret}"`` keyed by the secret (httpx URL-encodes it)."""
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return {"timestamp": timestamp, "sign": base64.b64encode(digest.digest()).decode()}


def robot_errcode(answer: httpx.Response) -> int:
    """Return the errcode a robot answered (0 when none or not JSON)."""
    try:
        body = answer.json()
    except ValueError:
        return 0
    return int(body.get("errcode") or 0) if isinstance(body, dict) else 0


def message_id(key: str, sender: str) -> str:
    """Return the Message-ID for an idempotency key: the same key, the same Message-ID."""
    domain = sender.rpartition("@")[2].strip(" >") or "gridgis.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.gridgis@{domain}>"


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Return an SMS template filled: {text} {subject} {title} {heading} {grid} {level}
    {event} {headline} {eta} {kind} {key}; a field it does not know stays empty."""
    try:
        return string.Formatter().vformat(template, (), _Blank(fields))
    except (ValueError, IndexError) as exc:
        raise SendFailed(f"GRIDGIS_SMS_TEMPLATE is malformed: {exc}", permanent=True) from None


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
