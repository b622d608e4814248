"""Hostile CAP 1.2 messages: entity tricks, broken XML, CAP's own rules broken.

The files under ``tests/fixtures/cap/bad_*.xml`` are the parser's cases (``test_cap.py``);
these go through HTTP, each with what the refusal must say (a regular expression) and its
status. ``alert()`` is a small valid message over Hengqin to break one piece at a time.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cap"
MAX_CAP_BYTES = 2 * 1024 * 1024  # gridgis.alerts.cap.MAX_CAP_BYTES, as a client knows it
POLYGON = "22.14,113.52 22.14,113.53 22.15,113.53 22.15,113.52 22.14,113.52"  # CAP: lat,lon


@dataclass(frozen=True)
class Message:
    name: str
    body: Callable[[], bytes]
    reason: str  # a regular expression the refusal must match
    status: int = 422


def alert(area: str = f"<polygon>{POLYGON}</polygon>", *, head: str = "", note: str = "",
          identifier: str = "HOSTILE-1", namespace: str = "1.2", area_desc: str = "横琴",
          info: bool = True) -> bytes:
    """A small CAP Alert over Hengqin; each argument replaces one piece ("": left out)."""
    desc = f"<areaDesc>{area_desc}</areaDesc>" if area_desc else ""
    block = f"""<info><category>Met</category><event>台风</event>
    <urgency>Expected</urgency><severity>Severe</severity><certainty>Likely</certainty>
    <area>{desc}{area}</area></info>""" if info else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>{head}
<alert xmlns="urn:oasis:names:tc:emergency:cap:{namespace}">
  {f"<identifier>{identifier}</identifier>" if identifier else ""}
  <sender>hostile@example.invalid</sender><sent>2024-09-05T16:00:00+08:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>{note}{block}
</alert>""".encode()


def fixture(name: str) -> Callable[[], bytes]:
    return lambda: (FIXTURES / name).read_bytes()


# One entity of 50 kB used 30,000 times: 1.5 GB once expanded, from a message under 2 MB.
QUADRATIC = '<!DOCTYPE alert [<!ENTITY x "' + "A" * 50_000 + '">]>'
QUADRATIC_USE = "<note>" + "&x;" * 30_000 + "</note>"

MESSAGES = [
    Message("billion laughs", fixture("bad_billion_laughs.xml"), r"DTD.*entity 'lol'"),
    Message("quadratic blowup",
            lambda: alert(head=QUADRATIC, note=QUADRATIC_USE),
            r"DTD.*entity 'x'"),
    Message("external entity", fixture("bad_external_entity.xml"),
            r"external entity 'xxe' \(file:///etc/passwd\)"),
    Message("external parameter entity",
            lambda: alert(head='<!DOCTYPE alert [<!ENTITY % x SYSTEM "file:///etc/passwd"> %x;]>'),
            r"DTD.*(entity 'x'|external)"),
    Message("external DTD",
            lambda: alert(head='<!DOCTYPE alert SYSTEM "http://example.invalid/cap.dtd">'),
            r"external DTD \(http://example\.invalid/cap\.dtd\)"),
    Message("not XML", lambda: b"this is not XML", r"not well-formed XML"),
    Message("empty body", lambda: b"", r"not well-formed XML"),
    Message("JSON sent as CAP", lambda: b'{"area": {}}', r"not well-formed XML"),
    Message("truncated", lambda: alert()[:300], r"not well-formed XML"),
    Message("wrong namespace", lambda: alert(namespace="1.1"),
            r"not a CAP 1\.2 message: .*cap:1\.1\}alert"),
    Message("over the size limit",
            lambda: alert().replace(b"</alert>", b"<!--" + b"x" * MAX_CAP_BYTES + b"--></alert>"),
            rf"limit is {MAX_CAP_BYTES} bytes", status=413),
    Message("deeply nested elements",
            lambda: alert(identifier="", note="<x>" * 100_000 + "</x>" * 100_000),
            r"<identifier> is required"),
    Message("lat/lon swapped", lambda: alert(
        f"<polygon>{' '.join(','.join(p.split(',')[::-1]) for p in POLYGON.split())}</polygon>"),
            r"latitude 113\.52 is outside -90\.\.90 .*swapped"),
    Message("circle with negative radius", lambda: alert("<circle>22.14,113.52 -5</circle>"),
            r"circle 1 of area 1: radius -5.* more than 0"),
    Message("circle of a huge radius", lambda: alert("<circle>22.14,113.52 1e308</circle>"),
            r"reaches the pole"),
    Message("non-numeric coordinates",
            lambda: alert("<polygon>a,b c,d e,f g,h a,b</polygon>"), r"'a' is not a number"),
    Message("NaN coordinates",
            lambda: alert(f"<polygon>{POLYGON.replace('22.14,113.52', 'nan,nan')}</polygon>"),
            r"not a finite number"),
    Message("huge coordinates",
            lambda: alert(f"<polygon>{POLYGON.replace('22.14,113.52', '1e308,1e308')}</polygon>"),
            r"latitude 1e\+308 is outside"),
    Message("polygon across the antimeridian", lambda: alert(
        "<polygon>-16.9,179.9 -16.9,-179.9 -16.8,-179.9 -16.8,179.9 -16.9,179.9</polygon>"),
            r"antimeridian"),
    Message("circle outside China", lambda: alert("<circle>40,-30 10</circle>"),
            r"circle 1 of area 1: the centre lies wholly outside China"),
    Message("polygon outside China", lambda: alert(
        "<polygon>40,-30 40,-29 41,-29 41,-30 40,-30</polygon>"), r"outside China"),
    Message("unclosed polygon", lambda: alert(
        f"<polygon>{POLYGON.rsplit(' ', 1)[0]}</polygon>"), r"not closed"),
    Message("missing identifier", lambda: alert(identifier=""), r"<identifier> is required"),
    Message("missing info", lambda: alert(info=False), r"needs at least one <info>"),
    Message("missing area", lambda: alert(area=""), r"no area gridgis can place"),
    Message("missing areaDesc", lambda: alert(area_desc=""), r"<areaDesc> is required"),
    Message("unknown geocode", lambda: alert(
        "<geocode><valueName>GB/T 2260</valueName><value>999999</value></geocode>"),
            r"geocode GB/T 2260=999999 names no admin unit"),
]
