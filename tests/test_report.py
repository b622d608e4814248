"""The after-action report of a warning: per-grid CSV, one self-contained HTML file with a map
and charts, the page; codes only, no names; for the command centre."""

import csv
import io
import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.checklist_helpers import T0, Login, worked_checklist

SNEAKY = "<script>alert('x')</script> 网关拒绝"


def reported_warning(client: TestClient, session: Session,
                     login: Login) -> tuple[str, str, dict[str, object]]:
    """A worked checklist whose alert was told at T0 + 2 min and acknowledged at T0 + 6 min,
    plus a dead letter whose reason holds markup."""
    identifier, grid, worked = worked_checklist(client, session, login)
    alert_id = session.execute(text(
        "SELECT a.id FROM alert a JOIN warning w ON w.id = a.warning_id "
        "WHERE w.identifier = :w"), {"w": identifier}).scalar_one()
    version = client.get(f"/api/alerts/{alert_id}", headers=worked["head"]).headers["ETag"]
    acked = client.post(f"/api/alerts/{alert_id}/ack",
                        headers={**worked["head"], "If-Match": version})
    assert acked.status_code == 200, acked.text
    session.execute(text("UPDATE alert SET created_at = :t, acknowledged_at = :a WHERE id = :i"),
                    {"t": T0, "a": T0 + timedelta(minutes=6), "i": alert_id})
    session.execute(text(
        "UPDATE outbox SET state = 'sent', sent_at = :s WHERE alert_id = :i AND kind = 'alert'"),
        {"s": T0 + timedelta(minutes=2), "i": alert_id})
    session.execute(text(
        "UPDATE outbox SET state = 'dead', attempts = 8, last_error = :e WHERE id = "
        "(SELECT min(id) FROM outbox WHERE alert_id = :i)"), {"e": SNEAKY, "i": alert_id})
    session.commit()
    return identifier, grid, worked


def test_the_csv_has_each_grids_numbers(client: TestClient, session: Session,
                                        login: Login) -> None:
    identifier, grid, worked = reported_warning(client, session, login)
    answer = client.get(f"/api/warnings/{identifier}/report.csv",
                        headers=login("rp-cc", "command"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.text.startswith("\ufeff")  # spreadsheet tools then read the Chinese right
    (row,) = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    listed = worked["listed"]
    assert isinstance(listed, list)
    people = worked["transfer"]["people"]  # type: ignore[index]
    assert row["grid"] == grid and row["items"] == str(len(listed))
    assert (row["finished"], row["contacted"], row["transferred"]) == ("2", "1", str(people))
    assert row["minutes_to_acknowledge"] == "4.0"  # told at 2 min, acknowledged at 6
    assert row["worked_through_at"] == ""  # most items are still open


def test_the_html_report_stands_alone_and_shows_the_story(client: TestClient, session: Session,
                                                          login: Login) -> None:
    identifier, grid, _ = reported_warning(client, session, login)
    command = login("rp-cc2", "command")
    answer = client.get(f"/api/warnings/{identifier}/report.html", headers=command)
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    page = answer.text
    assert "<script" not in page  # no scripts at all: the dead letter's reason is text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 网关拒绝" in page
    assert not re.search(r'(src|href)="https?:', page)  # nothing fetched from anywhere
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="map"') == 1
    assert page.count("<path ") == 1 and grid in page  # the one grid reached, on the map
    assert page.count("<polyline") == 4  # two charts of two lines
    assert "首个网格确认" in page and "预警发布" in page  # the timeline
    names = session.execute(text(
        "SELECT r.name FROM resident r JOIN building b ON b.id = r.building_id "
        "JOIN grid g ON g.id = b.grid_id WHERE g.code = :g"), {"g": grid}).scalars().all()
    assert names and not [n for n in names if n in page]  # codes only, never names


def test_the_report_is_for_the_command_centre(client: TestClient, session: Session,
                                              login: Login) -> None:
    identifier, _, worked = reported_warning(client, session, login)
    head = worked["head"]
    assert isinstance(head, dict)
    for url in (f"/api/warnings/{identifier}/report.csv",
                f"/api/warnings/{identifier}/report.html"):
        assert client.get(url, headers=head).status_code == 403
    command = login("rp-cc3", "command")
    assert client.get("/api/warnings/no-such-warning/report.csv",
                      headers=command).status_code == 404
    page = client.get(f"/reports/{identifier}", headers=command)
    assert page.status_code == 200 and "复盘报告" in page.text
    english = client.get(f"/reports/{identifier}?lang=en", headers=command).text
    assert "After-action report" in english and "First grid acknowledged" in english
    assert "复盘报告" not in english
    assert "report.csv" in page.text and "attachment" not in page.headers.get(
        "content-disposition", "")
    listed = client.get("/reports", headers=command)
    assert f'href="/reports/{identifier}"' in listed.text
    anonymous = client.get(f"/reports/{identifier}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_lateness_counts_the_stand_down_and_the_first_finish(
        client: TestClient, session: Session, login: Login) -> None:
    """A checklist stood down before its due time is not late; one still open past it is."""
    identifier, _, _ = reported_warning(client, session, login)
    command = login("rp-cc4", "command")

    def late(due_minutes: int, closed_minutes: int | None) -> str:
        session.execute(text(
            "UPDATE checklist SET due_at = :due, closed_at = :closed, state = CASE WHEN "
            "CAST(:closed AS timestamptz) IS NULL THEN 'open' ELSE 'stood_down' END "
            "WHERE alert_id IN (SELECT a.id FROM alert a JOIN warning w "
            "ON w.id = a.warning_id WHERE w.identifier = :w)"),
            {"due": T0 + timedelta(minutes=due_minutes), "w": identifier,
             "closed": None if closed_minutes is None else T0 + timedelta(minutes=closed_minutes)})
        session.commit()
        answer = client.get(f"/api/warnings/{identifier}/report.csv", headers=command)
        (row,) = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
        return row["late"]

    assert late(due_minutes=60, closed_minutes=45) == "False"  # stood down in time
    assert late(due_minutes=60, closed_minutes=90) == "True"  # stood down after its due time
    assert late(due_minutes=60, closed_minutes=None) == "True"  # open, and T0 + 1 h is past


def test_a_warning_named_in_chinese_downloads(client: TestClient, session: Session,
                                               login: Login) -> None:
    session.execute(text(
        "INSERT INTO warning (identifier, sender, sent, source, msg_type, status, level, "
        "level_rank, event) VALUES ('台风演练-1', 'test', now(), 'cap', 'alert', 'exercise', "
        "'red', 4, '台风')"))
    session.commit()
    answer = client.get("/api/warnings/台风演练-1/report.html",
                        headers=login("rp-cc5", "command"))
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert 'filename="report-____-1.html"' in disposition
    assert "filename*=UTF-8''report-%E5%8F%B0" in disposition
