"""Tests for CAP 1.2 parsing: safe XML, CAP rules, lat,lon order, levels, languages (no DB)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from gridgis.alerts.advisory import level_rank
from gridgis.alerts.cap import (
    MAX_CAP_BYTES,
    CapMessage,
    Reference,
    best_info,
    parse_cap,
)
from gridgis.alerts.cap_geometry import CIRCLE_VERTICES, circle_polygon
from gridgis.alerts.cap_levels import COLOUR_LEVEL, SEVERITY_LEVEL, SIGNAL_LEVEL
from gridgis.errors import InvalidInput, TooLarge

FIXTURES = Path(__file__).parent / "fixtures" / "cap"
CST = timezone(timedelta(hours=8))
ALERT_REFERENCE = Reference("warning@zhuhai-weather.example.cn", "CN-GD-ZH-20240905-TY2411-001",
                            datetime(2024, 9, 5, 16, 0, tzinfo=CST))
TIME_LIMIT_S = 2.0


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> CapMessage:
    return parse_cap(read(name))


def alert_with(old: str, new: str) -> bytes:
    """Return the typhoon Alert fixture with one piece of text replaced (once, checked)."""
    text = read("typhoon_alert.xml").decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_alert_message_fields() -> None:
    message = parse("typhoon_alert.xml")
    assert message.identifier == "CN-GD-ZH-20240905-TY2411-001"
    assert message.sender == "warning@zhuhai-weather.example.cn"
    assert message.sent == datetime(2024, 9, 5, 8, 0, tzinfo=UTC)
    assert message.sent.utcoffset() == timedelta(hours=8)
    assert (message.status, message.msg_type, message.scope) == ("Actual", "Alert", "Public")
    assert message.references == ()
    assert message.codes == ("typhoon-2411-yagi",)
    assert message.incidents == "TY2411"
    assert not message.is_exercise
    assert message.reference == ALERT_REFERENCE


def test_alert_keeps_every_language() -> None:
    message = parse("typhoon_alert.xml")
    assert [info.language for info in message.infos] == ["zh-CN", "en-US", "pt-MO"]
    zh, en, pt = message.infos
    assert (zh.event, en.event, pt.event) == ("台风", "Typhoon", "Tufão")
    assert zh.categories == ("Met",)
    assert (zh.urgency, zh.severity, zh.certainty) == ("Expected", "Severe", "Likely")
    assert zh.response_types == ("Prepare", "Evacuate")
    assert zh.event_codes == (("GB/T 27962", "11B01"),)
    assert zh.onset == datetime(2024, 9, 6, 8, 0, tzinfo=CST)
    assert zh.expires == datetime(2024, 9, 6, 23, 59, tzinfo=CST)
    assert zh.headline == "珠海市气象台发布台风橙色预警信号"
    assert zh.instruction is not None and "网格员" in zh.instruction
    assert zh.parameter("stormName") == "摩羯 Yagi"
    assert zh.parameter("missing") is None


def test_levels_from_parameter_or_severity() -> None:
    zh, en, pt = parse("typhoon_alert.xml").infos
    assert (zh.level, zh.level_source) == ("orange", "parameter 颜色")
    assert (en.level, en.level_source) == ("orange", "parameter warningLevel")
    assert (pt.level, pt.level_source) == ("orange", "severity")
    assert pt.severity == "Severe"


@pytest.mark.parametrize(("severity", "level"), [
    ("Extreme", "red"), ("Severe", "orange"), ("Moderate", "yellow"), ("Minor", "blue"),
    ("Unknown", None),
])
def test_severity_level_mapping(severity: str, level: str | None) -> None:
    data = read("typhoon_alert.xml").decode().replace("<severity>Severe</severity>",
                                                      f"<severity>{severity}</severity>")
    pt = parse_cap(data.encode()).infos[2]
    assert (pt.severity, pt.level) == (severity, level)


@pytest.mark.parametrize(("name", "value", "level"), [
    ("颜色", "红色", "red"), ("颜色", "蓝色", "blue"), ("level", "Yellow", "yellow"),
    ("预警级别", "Ⅳ级", "blue"), ("预警级别", "I级", "red"), ("awareness", "x", "orange"),
    ("Signal", "8NE", "orange"), ("signal", "T3", "yellow"), ("风球", "10", "red"),
])
def test_level_parameter_values(name: str, value: str, level: str) -> None:
    data = alert_with("<valueName>颜色</valueName>\n      <value>橙色</value>",
                      f"<valueName>{name}</valueName><value>{value}</value>")
    assert parse_cap(data).infos[0].level == level


def test_levels_agree_with_level_rank() -> None:
    """Every level this module can give is one ``advisory.level_rank`` ranks, and a signal
    ranks as the colour it is mapped to here."""
    for level in {*SEVERITY_LEVEL.values(), *COLOUR_LEVEL.values(), *SIGNAL_LEVEL.values()}:
        assert level_rank(level) in (1, 2, 3, 4)
    for signal, level in SIGNAL_LEVEL.items():
        assert level_rank(level) == level_rank(f"signal {signal}")


def test_unknown_level_value_is_refused() -> None:
    data = alert_with("<value>橙色</value>", "<value>紫色</value>")
    with pytest.raises(InvalidInput, match="info 1: parameter 颜色 = '紫色' is not a level"):
        parse_cap(data)


def test_polygon_is_lon_lat_around_hengqin() -> None:
    area = parse("typhoon_alert.xml").infos[0].areas[0]
    assert area.description.startswith("横琴粤澳深度合作区")
    (polygon,) = area.polygons
    centroid = polygon.centroid
    assert abs(centroid.x - 113.5) < 0.1 and abs(centroid.y - 22.1) < 0.1
    assert shapely.is_valid(polygon)
    xmin, ymin, xmax, ymax = polygon.bounds
    assert (xmin, ymin, xmax, ymax) == (113.38, 21.97, 113.68, 22.28)
    assert area.geocodes == (("GB/T 2260", "440402"),)
    assert parse("typhoon_alert.xml").infos[2].areas[0].geocodes == (("ADCODE", "820000"),)


def test_circle_centre_radius_and_ellipsoid_polygon() -> None:
    area = parse("typhoon_alert.xml").infos[0].areas[0]
    (circle,) = area.circles
    assert (circle.centre.x, circle.centre.y, circle.radius_km) == (113.55, 22.15, 30.0)
    ring = list(circle.polygon.exterior.coords)
    assert len(ring) == CIRCLE_VERTICES + 1
    assert circle.polygon.exterior.is_ccw and shapely.is_valid(circle.polygon)
    geod = Geod(ellps="WGS84")
    for lon, lat in ring:
        distance_m = geod.inv(113.55, 22.15, lon, lat)[2]
        assert distance_m == pytest.approx(30_000, abs=0.01)
    geometry = area.geometry()
    assert geometry is not None and geometry.contains(circle.centre)


def test_circle_across_the_antimeridian_stays_one_polygon() -> None:
    polygon = circle_polygon(179.9, 10.0, 100.0)
    assert shapely.is_valid(polygon) and polygon.area < 4
    assert polygon.bounds[2] > 180


@pytest.mark.parametrize(("circle", "reason"), [
    ("22.15,113.55", "is not 'lat,lon radius_km'"),
    ("22.15,113.55 -5", "must be more than 0"),
    ("22.15,113.55 abc", "radius 'abc' is not a number"),
    ("89.9,113.55 50", "reaches the pole"),
])
def test_bad_circles(circle: str, reason: str) -> None:
    data = alert_with("<circle>22.15,113.55 30</circle>", f"<circle>{circle}</circle>")
    with pytest.raises(InvalidInput, match=f"info 1: circle 1 of area 1: .*{reason}"):
        parse_cap(data)


def test_self_intersecting_polygon_is_refused() -> None:
    bowtie = "22.3,113.4 22.0,113.7 22.3,113.7 22.0,113.4 22.3,113.4"
    data = alert_with("<polygon>22.28,113.45", f"<polygon>{bowtie}</polygon><polygon>22.28,113.45")
    with pytest.raises(InvalidInput, match="polygon 1 of area 1: invalid geometry: Self-inters"):
        parse_cap(data)


def test_update_references_the_alert() -> None:
    update = parse("typhoon_update.xml")
    assert update.msg_type == "Update"
    assert update.references == (ALERT_REFERENCE,)
    assert parse("typhoon_alert.xml").reference in update.references
    zh = best_info(update)
    assert zh is not None and (zh.level, zh.severity) == ("red", "Extreme")
    assert zh.areas[0].polygons[0].bounds == (113.4, 22.0, 113.7, 22.3)


def test_cancel_references_both_and_has_no_info() -> None:
    cancel = parse("typhoon_cancel.xml")
    assert cancel.msg_type == "Cancel"
    assert [ref.identifier for ref in cancel.references] == [
        "CN-GD-ZH-20240905-TY2411-001", "CN-GD-ZH-20240906-TY2411-002"]
    assert cancel.references[1].sent == datetime(2024, 9, 6, 6, 30, tzinfo=CST)
    assert cancel.infos == ()
    assert best_info(cancel) is None
    assert cancel.note is not None and "解除" in cancel.note


def test_prefixed_namespace_exercise() -> None:
    drill = parse("typhoon_exercise_prefixed.xml")
    assert drill.identifier == "HQ-DRILL-2025-05-20-01"
    assert (drill.status, drill.scope) == ("Exercise", "Restricted")
    assert drill.is_exercise
    assert drill.restriction is not None and "演练" in drill.restriction
    hk, en = drill.infos
    assert (hk.language, hk.level, hk.level_source) == ("zh-HK", "orange", "parameter signal")
    assert (en.language, en.level, en.level_source) == ("en", "yellow", "severity")
    centroid = hk.areas[0].polygons[0].centroid
    assert centroid.x == pytest.approx(113.53) and centroid.y == pytest.approx(22.12)


@pytest.mark.parametrize("status", ["Exercise", "Test", "Draft", "System"])
def test_every_non_actual_status_is_an_exercise(status: str) -> None:
    data = alert_with("<status>Actual</status>", f"<status>{status}</status>")
    assert parse_cap(data).is_exercise


def test_best_info_preference() -> None:
    alert = parse("typhoon_alert.xml")
    drill = parse("typhoon_exercise_prefixed.xml")
    assert best_info(alert).language == "zh-CN"  # type: ignore[union-attr]
    assert best_info(alert, ("en", "zh-CN")).language == "en-US"  # type: ignore[union-attr]
    assert best_info(alert, ("pt",)).language == "pt-MO"  # type: ignore[union-attr]
    assert best_info(alert, ("fr",)).language == "zh-CN"  # type: ignore[union-attr]
    assert best_info(drill).language == "zh-HK"  # type: ignore[union-attr]
    assert best_info(drill, ("zh-CN", "en")).language == "zh-HK"  # type: ignore[union-attr]
    assert best_info(drill, ("en-GB", "zh-CN")).language == "en"  # type: ignore[union-attr]
    zh, en, pt = alert.infos
    taiwan_first = replace(alert, infos=(replace(zh, language="zh-TW"),
                                         replace(en, language="zh-HK"), pt))
    chosen = best_info(taiwan_first, ("zh-CN", "zh-HK"))
    assert chosen is not None and chosen.language == "zh-HK"
    chosen = best_info(taiwan_first, ("zh-CN", "en"))
    assert chosen is not None and chosen.language == "zh-TW"


def test_language_defaults_to_en_us() -> None:
    data = alert_with("<language>zh-CN</language>", "")
    assert parse_cap(data).infos[0].language == "en-US"


BAD = [
    ("bad_malformed.xml", "not well-formed XML: mismatched tag"),
    ("bad_billion_laughs.xml",
     r"XML refused: it has a DTD \(<!DOCTYPE alert>\).*declares the entity 'lol' \(entity "
     "expansion"),
    ("bad_external_entity.xml",
     "XML refused: it has a DTD.*declares the external entity 'xxe' \\(file:///etc/passwd\\)"),
    ("bad_polygon_not_closed.xml", "info 1: polygon 1 of area 1: not closed"),
    ("bad_polygon_three_points.xml", "info 1: polygon 1 of area 1: fewer than four points"),
    ("bad_latlon_swapped.xml",
     "polygon 1 of area 1: point 1: latitude 113.4 is outside -90..90 .*swapped"),
    ("bad_update_without_references.xml", "alert: <references> is required for msgType Update"),
    ("bad_missing_identifier.xml", "alert: <identifier> is required"),
    ("bad_naive_sent.xml", "alert: <sent> '2024-09-05T16:00:00' has no timezone"),
    ("bad_unknown_msgtype.xml",
     "alert: <msgType> 'Warning' is not one of Alert, Update, Cancel, Ack, Error"),
]


@pytest.mark.parametrize(("name", "reason"), BAD)
def test_bad_fixture_is_refused_quickly(name: str, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=reason) as refused:
        parse(name)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert "root:" not in str(refused.value)  # nothing of /etc/passwd leaks into a message


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("<scope>Public</scope>", "<scope>Private</scope>", "<addresses> is required"),
    ("<sent>2024-09-05T16:00:00+08:00</sent>", "<sent>yesterday</sent>", "not a CAP date-time"),
    ("<category>Met</category>", "<category>Weather</category>", "info 1: <category> 'Weather'"),
    ("<category>Met</category>", "", "info 1: <category> is required"),
    ("<urgency>Expected</urgency>", "", "info 1: <urgency> is required"),
    ("<certainty>Likely</certainty>", "<certainty>Very Likely</certainty>", "<certainty>"),
    ("<event>台风</event>", "<event> </event>", "info 1: <event> is required"),
    ("<areaDesc>横琴粤澳深度合作区、澳门及珠江口西岸沿海</areaDesc>", "",
     "info 1: area 1: <areaDesc> is required"),
    ("<value>440402</value>", "", "info 1: area 1: <geocode> 1 needs <valueName> and <value>"),
    ("<identifier>CN-GD-ZH-20240905-TY2411-001</identifier>", "<identifier>a,b</identifier>",
     "contains a space, comma"),
    ("<onset>2024-09-06T08:00:00+08:00</onset>", "<onset>2024-09-06T08:00:00</onset>",
     "info 1: <onset> .* has no timezone"),
    ("22.28,113.45 22.26,113.62", "22.28,113.45 22.26;113.62", "point 2: '22.26;113.62' is not"),
    ("22.28,113.45 22.26,113.62", "22.28,113.45 22.26,213.62", "longitude 213.62 is outside"),
])
def test_broken_rules_are_named(old: str, new: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_cap(alert_with(old, new))


def test_update_needs_info_and_references_must_be_triples() -> None:
    cancel = read("typhoon_cancel.xml").decode()
    with pytest.raises(InvalidInput, match="msgType Update needs at least one <info>"):
        parse_cap(cancel.replace("<msgType>Cancel", "<msgType>Update").encode())
    broken = cancel.replace(",CN-GD-ZH-20240905-TY2411-001,", ",CN-GD-ZH-20240905-TY2411-001 ")
    with pytest.raises(InvalidInput, match=r"<references> entry 1 .* is not sender,identifier"):
        parse_cap(broken.encode())


def test_other_namespaces_and_documents_are_refused() -> None:
    cap11 = read("typhoon_cancel.xml").replace(b"cap:1.2", b"cap:1.1")
    with pytest.raises(InvalidInput, match=r"not a CAP 1.2 message: .*cap:1.1\}alert"):
        parse_cap(cap11)
    bare = read("typhoon_cancel.xml").replace(b' xmlns="urn:oasis:names:tc:emergency:cap:1.2"',
                                              b"")
    with pytest.raises(InvalidInput, match="root element is alert, not <alert> in namespace"):
        parse_cap(bare)
    with pytest.raises(InvalidInput, match="not well-formed XML"):
        parse_cap(b"")


def test_plain_dtd_and_external_dtd_are_refused() -> None:
    body = read("typhoon_cancel.xml").split(b"?>", 1)[1]
    with pytest.raises(InvalidInput, match=r"has a DTD \(<!DOCTYPE alert>\), which CAP 1.2 never"):
        parse_cap(b"<!DOCTYPE alert [<!ELEMENT alert ANY>]>" + body)
    with pytest.raises(InvalidInput, match=r"points to an external DTD .*http://example\.invalid"):
        parse_cap(b'<!DOCTYPE alert SYSTEM "http://example.invalid/cap.dtd">' + body)


def test_multi_byte_encodings_other_than_utf8_are_refused_clearly() -> None:
    data = read("typhoon_cancel.xml").decode().replace('encoding="UTF-8"', 'encoding="GB2312"')
    with pytest.raises(InvalidInput, match="send CAP in UTF-8"):
        parse_cap(data.encode("gb2312"))


def test_size_limit_before_parsing() -> None:
    data = read("typhoon_alert.xml")
    padding = b"<!--" + b"x" * (MAX_CAP_BYTES - len(data)) + b"-->"
    started = time.perf_counter()
    with pytest.raises(TooLarge, match=f"limit is {MAX_CAP_BYTES} bytes"):
        parse_cap(data + padding)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert issubclass(TooLarge, InvalidInput)


def test_message_is_frozen() -> None:
    message = parse("typhoon_alert.xml")
    with pytest.raises(AttributeError):
        message.identifier = "x"  # type: ignore[misc]
