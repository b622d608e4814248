"""CAP 1.2 messages in: safe XML, the CAP rules gridgis relies on, areas as shapely in lon/lat.

* XML goes through defusedxml (expat) and any DTD is refused: CAP needs none, and a DTD is
  where entity expansion (billion laughs) and external entities (XXE) live. Input above
  ``MAX_CAP_BYTES`` is refused before parsing.
* The CAP 1.2 rules are checked by hand, not with the OASIS XSD: no maintained package ships
  the schema, and these checks name the element at fault and tolerate element order.
* CAP writes ``lat,lon``; every geometry here is lon/lat, EPSG:4326. A circle is
  ``lat,lon radius_km``; its polygon is drawn on the WGS 84 ellipsoid.
* Geocodes are returned as the message's (valueName, value) pairs; another module resolves
  them to admin units. A Chinese administrative division code arrives as e.g.
  ``("GB/T 2260", "440402")`` or ``("ADCODE", "440402")``.
* Levels (blue, yellow, orange, red): see ``cap_levels``; the raw severity is kept too.
* ``<resource>``, ``<web>``, ``<contact>``, ``<altitude>``, ``<ceiling>`` and
  signatures are ignored.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, cast
from xml.etree.ElementTree import Element, ParseError

import shapely
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml import ElementTree as safe_etree
from shapely.geometry import Polygon

from gridgis.alerts import cap_geometry, cap_levels
from gridgis.alerts.cap_geometry import Circle
from gridgis.errors import InvalidInput, TooLarge

CAP_NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_CAP_BYTES: Final = 2 * 1024 * 1024
DEFAULT_LANGUAGE: Final = "en-US"

Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]

STATUSES: Final = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES: Final = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES: Final = ("Public", "Restricted", "Private")
CATEGORIES: Final = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
                     "Transport", "Infra", "CBRNE", "Other")
RESPONSE_TYPES: Final = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor",
                         "Assess", "AllClear", "None")
URGENCIES: Final = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES: Final = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES: Final = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

_NS: Final = "{" + CAP_NAMESPACE + "}"


@dataclass(frozen=True)
class Reference:
    """One earlier message named in ``<references>``."""

    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True)
class Area:
    """One ``<area>``: description, polygons and circles in lon/lat, geocodes as given."""

    description: str
    polygons: tuple[Polygon, ...]
    circles: tuple[Circle, ...]
    geocodes: tuple[tuple[str, str], ...]

    def geometry(self) -> shapely.Geometry | None:
        """Return the union of the polygons and circles (lon/lat), None for geocodes only."""
        shapes = [*self.polygons, *(circle.polygon for circle in self.circles)]
        return shapely.union_all(shapes) if shapes else None


@dataclass(frozen=True)
class Info:
    """One ``<info>`` block, in one language; ``level`` is gridgis's colour or None."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    level: str | None
    level_source: str | None
    response_types: tuple[str, ...]
    event_codes: tuple[tuple[str, str], ...]
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    sender_name: str | None
    headline: str | None
    description: str | None
    instruction: str | None
    parameters: tuple[tuple[str, str], ...]
    areas: tuple[Area, ...]

    def parameter(self, name: str) -> str | None:
        """Return the value of the first parameter called ``name``, or None."""
        return next((value for key, value in self.parameters if key == name), None)


@dataclass(frozen=True)
class CapMessage:
    """A CAP 1.2 ``<alert>``; ``infos`` keeps every language block in document order."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    source: str | None
    restriction: str | None
    addresses: str | None
    codes: tuple[str, ...]
    note: str | None
    references: tuple[Reference, ...]
    incidents: str | None
    infos: tuple[Info, ...]

    @property
    def is_exercise(self) -> bool:
        """True unless status is Actual: never send such a message to public channels."""
        return self.status != "Actual"

    @property
    def reference(self) -> Reference:
        """Return how a later Update or Cancel names this message."""
        return Reference(self.sender, self.identifier, self.sent)


def parse_cap(xml_bytes: bytes) -> CapMessage:
    """Return the CAP 1.2 message in ``xml_bytes``; raise InvalidInput saying what is wrong."""
    if len(xml_bytes) > MAX_CAP_BYTES:
        raise TooLarge(f"CAP message of {len(xml_bytes)} bytes refused: the limit is "
                       f"{MAX_CAP_BYTES} bytes")
    root = _parse_xml(xml_bytes)
    if root.tag != _NS + "alert":
        raise InvalidInput(f"not a CAP 1.2 message: the root element is {root.tag}, not "
                           f"<alert> in namespace {CAP_NAMESPACE}")
    return _message(root)


def best_info(message: CapMessage,
              preferred: Sequence[str] = ("zh-CN", "zh-HK", "en")) -> Info | None:
    """Return the info block in the first preferred language that has one, else the first.

    Each preference in turn takes a block of exactly its tag, else one of its primary
    language ("en" takes "en-US"), unless a later preference of that language is there
    exactly. None when the message has no info block (a Cancel may have none).
    """
    tags = [info.language.casefold() for info in message.infos]
    wanted = [tag.casefold() for tag in preferred]
    for number, tag in enumerate(wanted):
        if tag in tags:
            return message.infos[tags.index(tag)]
        primary = tag.split("-")[0]
        if any(later in tags for later in wanted[number + 1:] if later.split("-")[0] == primary):
            continue
        for info, have in zip(message.infos, tags, strict=True):
            if have.split("-")[0] == primary:
                return info
    return message.infos[0] if message.infos else None


def _parse_xml(data: bytes) -> Element:
    try:
        return safe_etree.fromstring(data, forbid_dtd=True)
    except DTDForbidden as exc:
        raise InvalidInput(_dtd_refusal(data, exc)) from None
    except DefusedXmlException as exc:
        raise InvalidInput(f"XML refused: {exc}") from None
    except ParseError as exc:
        raise InvalidInput(f"not well-formed XML: {exc}") from None
    except ValueError as exc:  # expat reads UTF-8, UTF-16 and single-byte encodings only
        raise InvalidInput(f"XML not readable ({exc}): send CAP in UTF-8") from None


def _dtd_refusal(data: bytes, refused: DTDForbidden) -> str:
    """Say what a refused DTD holds, from a second pass that is still defused (it allows the
    DTD but refuses every entity declaration, so nothing is expanded or fetched)."""
    reason = f"XML refused: it has a DTD (<!DOCTYPE {refused.name}>), which CAP 1.2 never needs"
    if refused.sysid:
        return f"{reason}; it points to an external DTD ({refused.sysid})"
    try:
        safe_etree.fromstring(data, forbid_dtd=False, forbid_entities=True,
                              forbid_external=True)
    except EntitiesForbidden as exc:
        if exc.sysid:
            return f"{reason}; it declares the external entity '{exc.name}' ({exc.sysid})"
        return (f"{reason}; it declares the entity '{exc.name}' "
                "(entity expansion, as in billion laughs)")
    except ExternalReferenceForbidden as exc:
        return f"{reason}; it refers to an external resource ({exc.sysid})"
    except (DefusedXmlException, ParseError, ValueError):
        pass
    return reason


def _message(root: Element) -> CapMessage:
    where = "alert"
    identifier = _token(root, "identifier", where)
    sender = _token(root, "sender", where)
    sent = _time(_required(root, "sent", where), f"{where}: <sent>")
    status = cast(Status, _choice(_text(root, "status"), "status", STATUSES, where))
    msg_type = cast(MsgType, _choice(_text(root, "msgType"), "msgType", MSG_TYPES, where))
    scope = cast(Scope, _choice(_text(root, "scope"), "scope", SCOPES, where))
    addresses = _text(root, "addresses")
    if scope == "Private" and addresses is None:
        raise InvalidInput("alert: <addresses> is required when <scope> is Private")
    references_text = _text(root, "references")
    if msg_type != "Alert" and references_text is None:
        raise InvalidInput(f"alert: <references> is required for msgType {msg_type}: the "
                           "sender,identifier,sent of the message(s) it refers to")
    infos = tuple(_info(element, number)
                  for number, element in enumerate(root.findall(_NS + "info"), 1))
    if msg_type in ("Alert", "Update") and not infos:
        raise InvalidInput(f"alert: msgType {msg_type} needs at least one <info>")
    return CapMessage(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        source=_text(root, "source"),
        restriction=_text(root, "restriction"),
        addresses=addresses,
        codes=tuple(_texts(root, "code")),
        note=_text(root, "note"),
        references=_references(references_text) if references_text else (),
        incidents=_text(root, "incidents"),
        infos=infos,
    )


def _info(element: Element, number: int) -> Info:
    where = f"info {number}"
    categories = tuple(_texts(element, "category"))
    if not categories:
        raise InvalidInput(f"{where}: <category> is required")
    for category in categories:
        _choice(category, "category", CATEGORIES, where)
    response_types = tuple(_texts(element, "responseType"))
    for response_type in response_types:
        _choice(response_type, "responseType", RESPONSE_TYPES, where)
    severity = _choice(_text(element, "severity"), "severity", SEVERITIES, where)
    parameters = _pairs(element, "parameter", where)
    level, level_source = cap_levels.level_of(parameters, severity, where)
    return Info(
        language=_text(element, "language") or DEFAULT_LANGUAGE,
        categories=categories,
        event=_required(element, "event", where),
        urgency=_choice(_text(element, "urgency"), "urgency", URGENCIES, where),
        severity=severity,
        certainty=_choice(_text(element, "certainty"), "certainty", CERTAINTIES, where),
        level=level,
        level_source=level_source,
        response_types=response_types,
        event_codes=_pairs(element, "eventCode", where),
        effective=_optional_time(element, "effective", where),
        onset=_optional_time(element, "onset", where),
        expires=_optional_time(element, "expires", where),
        sender_name=_text(element, "senderName"),
        headline=_text(element, "headline"),
        description=_text(element, "description"),
        instruction=_text(element, "instruction"),
        parameters=parameters,
        areas=tuple(_area(area, area_number, where)
                    for area_number, area in enumerate(element.findall(_NS + "area"), 1)),
    )


def _area(element: Element, number: int, info_where: str) -> Area:
    polygons = tuple(
        cap_geometry.polygon_of(text, f"{info_where}: polygon {n} of area {number}")
        for n, text in enumerate(_texts(element, "polygon", keep_empty=True), 1))
    circles = tuple(
        cap_geometry.circle_of(text, f"{info_where}: circle {n} of area {number}")
        for n, text in enumerate(_texts(element, "circle", keep_empty=True), 1))
    return Area(
        description=_required(element, "areaDesc", f"{info_where}: area {number}"),
        polygons=polygons,
        circles=circles,
        geocodes=_pairs(element, "geocode", f"{info_where}: area {number}"),
    )


def _references(text: str) -> tuple[Reference, ...]:
    references = []
    for number, entry in enumerate(text.split(), 1):
        parts = entry.split(",")
        if len(parts) != 3 or not all(parts):
            raise InvalidInput(f"alert: <references> entry {number} '{entry}' is not "
                               "sender,identifier,sent")
        sent = _time(parts[2], f"alert: <references> entry {number} sent")
        references.append(Reference(parts[0], parts[1], sent))
    return tuple(references)


def _time(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{where} '{text}' is not a CAP date-time such as "
                           "2024-09-05T16:00:00+08:00") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{where} '{text}' has no timezone; CAP needs one, such as +08:00")
    return value


def _optional_time(element: Element, name: str, where: str) -> datetime | None:
    text = _text(element, name)
    return None if text is None else _time(text, f"{where}: <{name}>")


def _pairs(element: Element, name: str, where: str) -> tuple[tuple[str, str], ...]:
    """Return the (valueName, value) pairs of the ``name`` children, in document order."""
    pairs = []
    for number, child in enumerate(element.findall(_NS + name), 1):
        key, value = _text(child, "valueName"), _text(child, "value")
        if key is None or value is None:
            raise InvalidInput(f"{where}: <{name}> {number} needs <valueName> and <value>")
        pairs.append((key, value))
    return tuple(pairs)


def _token(element: Element, name: str, where: str) -> str:
    """Return an identifier-like field: CAP forbids spaces, commas, '<' and '&' in it."""
    value = _required(element, name, where)
    if re.search(r"[\s,<&]", value):
        raise InvalidInput(f"{where}: <{name}> '{value}' contains a space, comma, '<' or '&'")
    return value


def _choice(value: str | None, name: str, allowed: Sequence[str], where: str) -> str:
    if value is None:
        raise InvalidInput(f"{where}: <{name}> is required")
    if value not in allowed:
        raise InvalidInput(f"{where}: <{name}> '{value}' is not one of {', '.join(allowed)}")
    return value


def _required(element: Element, name: str, where: str) -> str:
    value = _text(element, name)
    if value is None:
        raise InvalidInput(f"{where}: <{name}> is required")
    return value


def _text(element: Element, name: str) -> str | None:
    """Return the stripped text of the first CAP child ``name``; None if absent or empty."""
    child = element.find(_NS + name)
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def _texts(element: Element, name: str, keep_empty: bool = False) -> list[str]:
    texts = [(child.text or "").strip() for child in element.findall(_NS + name)]
    return texts if keep_empty else [text for text in texts if text]
