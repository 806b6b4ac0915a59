"""HTTP: health, practitioners, availability, the tRPC call, OpenAPI and /docs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from adapters.memory import FakeCalendarGateway
from booking_core.model import CalendarLink

from .http_support import SLOT, Web, assert_problem


@pytest.fixture
def web() -> Web:
    return Web()


# -- health ---------------------------------------------------------------------------------------


def test_healthz(web: Web) -> None:
    response = web.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_the_database_answers() -> None:
    calls: list[int] = []
    web = Web(check_database=lambda: calls.append(1))
    response = web.client.get("/readyz")
    assert response.status_code == 200
    assert calls == [1]


def test_readyz_is_a_503_problem_when_the_database_does_not_answer() -> None:
    def down() -> None:
        raise ConnectionError("connection to 10.0.0.5:5432 refused, password=hunter2")

    web = Web(check_database=down)
    response = web.client.get("/readyz")
    body = assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert "hunter2" not in json.dumps(body)
    assert "10.0.0.5" not in json.dumps(body)


# -- practitioners --------------------------------------------------------------------------------


def test_practitioners_list_has_active_practitioners_with_services(web: Web) -> None:
    response = web.client.get("/api/practitioners")
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [p["id"] for p in items] == [1, 2]
    maya = items[0]
    assert maya["timezone"] == "Europe/London"
    assert {"id", "name", "title", "bio", "timezone", "services"} <= set(maya)
    assert "email" not in maya  # the practitioner's address is not public
    consultation = maya["services"][0]
    assert consultation["price"] == {"amount": 9000, "currency": "gbp"}
    assert consultation["duration_minutes"] == 50


def test_inactive_practitioners_are_not_listed(web: Web) -> None:
    with web.store.unit_of_work() as uow:
        jordan = uow.practitioners.get(2)
        jordan.active = False
        uow.practitioners.save(jordan)
        uow.commit()
    assert [p["id"] for p in web.client.get("/api/practitioners").get_json()["items"]] == [1]
    assert_problem(web.client.get("/api/practitioners/2"), 404, "not_found")


def test_one_practitioner(web: Web) -> None:
    response = web.client.get("/api/practitioners/2")
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "Jordan Lee"
    assert [s["id"] for s in body["services"]] == [3]


@pytest.mark.parametrize("pid", ["99", "0", str(2**31), "99999999999999999999999999"])
def test_unknown_practitioner_is_404(web: Web, pid: str) -> None:
    assert_problem(web.client.get(f"/api/practitioners/{pid}"), 404, "not_found")


def test_non_numeric_practitioner_id_is_404(web: Web) -> None:
    assert_problem(web.client.get("/api/practitioners/abc"), 404, "not_found")
    assert_problem(web.client.get("/api/practitioners/-1"), 404, "not_found")


# -- availability ---------------------------------------------------------------------------------


def test_availability_defaults_to_seven_days_from_today(web: Web) -> None:
    response = web.client.get("/api/practitioners/1/availability")
    assert response.status_code == 200
    body = response.get_json()
    assert body["practitioner_id"] == 1
    assert body["service_id"] == 1  # the first active service
    assert body["timezone"] == "Europe/London"
    assert body["source"] == "schedule"
    assert (body["from"], body["to"]) == ("2030-01-07", "2030-01-13")
    starts = [s["start"] for s in body["slots"]]
    # 12 hours' notice: nothing on Monday; Tue-Fri 7 starts each; nothing at the weekend.
    assert starts[0] == SLOT
    assert len(starts) == 4 * 7
    assert all(s.endswith("Z") for s in starts)
    assert body["slots"][0]["end"] == "2030-01-08T09:50:00Z"


def test_availability_with_service_and_range(web: Web) -> None:
    body = web.client.get(
        "/api/practitioners/1/availability?service_id=2&from=2030-01-07&to=2030-01-07"
    ).get_json()
    assert body["service_id"] == 2
    starts = [s["start"] for s in body["slots"]]
    # 2 hours' notice from 08:00: 10:00 is the first start, 30-minute steps, lunch excluded.
    assert starts[0] == "2030-01-07T10:00:00Z"
    assert "2030-01-07T12:00:00Z" not in starts
    assert starts[-1] == "2030-01-07T16:30:00Z"
    assert all(s.startswith("2030-01-07") for s in starts)


def test_availability_to_is_inclusive(web: Web) -> None:
    one_day = web.slots("?from=2030-01-08&to=2030-01-08")
    two_days = web.slots("?from=2030-01-08&to=2030-01-09")
    assert one_day
    assert all(s.startswith("2030-01-08") for s in one_day)
    assert len(two_days) == 2 * len(one_day)
    assert any(s.startswith("2030-01-09") for s in two_days)


def test_availability_dates_are_in_the_practitioners_timezone(web: Web) -> None:
    body = web.client.get(
        "/api/practitioners/2/availability?from=2030-01-08&to=2030-01-08"
    ).get_json()
    assert body["timezone"] == "America/New_York"
    # Tuesday 08:00-12:00 and 14:00-18:00 New York = 13:00-17:00 and 19:00-23:00 UTC.
    starts = [s["start"] for s in body["slots"]]
    assert starts[0] == "2030-01-08T13:00:00Z"
    assert starts[-1] == "2030-01-08T22:00:00Z"


def test_availability_omits_a_held_slot(web: Web) -> None:
    assert SLOT in web.slots()
    web.booked()
    assert SLOT not in web.slots()


def test_availability_window_of_62_days_is_allowed_63_is_not(web: Web) -> None:
    ok = web.client.get("/api/practitioners/1/availability?from=2030-01-07&to=2030-03-09")
    assert ok.status_code == 200
    body = assert_problem(
        web.client.get("/api/practitioners/1/availability?from=2030-01-07&to=2030-03-10"),
        422,
        "validation_error",
    )
    assert "to" in body["errors"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=2030-01-10&to=2030-01-09", "to"),
        ("?from=bad", "from"),
        ("?to=2030-1-9", "to"),
        ("?from=2030-02-30", "from"),
        ("?from=2030-01-07T00:00:00Z", "from"),
        ("?from=", "from"),
        ("?from=9999-12-31", "from"),
        ("?from=0001-01-01", "from"),
        ("?to=0001-01-01", "to"),
        ("?from=2027-01-01", "from"),
        ("?unknown=1", "unknown"),
        ("?service_id=abc", "service_id"),
        ("?service_id=1.5", "service_id"),
        ("?service_id=", "service_id"),
        ("?service_id=0", "service_id"),
        ("?service_id=99999999999999999999999", "service_id"),
        ("?from=2030-01-07&from=2030-01-08", "from"),
    ],
)
def test_bad_availability_queries_are_422(web: Web, query: str, field: str) -> None:
    body = assert_problem(
        web.client.get(f"/api/practitioners/1/availability{query}"), 422, "validation_error"
    )
    assert field in body["errors"], body


@pytest.mark.parametrize(
    "path",
    [
        "/api/practitioners/99/availability",
        f"/api/practitioners/{2**31}/availability",
        "/api/practitioners/99999999999999999999999/availability",
        "/api/practitioners/1/availability?service_id=999",
        "/api/practitioners/1/availability?service_id=3",  # another practitioner's service
    ],
)
def test_unknown_practitioner_or_service_is_404(web: Web, path: str) -> None:
    assert_problem(web.client.get(path), 404, "not_found")


# -- tRPC -----------------------------------------------------------------------------------------


def _trpc(web: Web, raw: str):  # type: ignore[no-untyped-def]
    return web.client.get(f"/api/trpc/bookings.getAvailability?input={quote(raw)}")


def test_trpc_call_answers_in_the_seeds_shape(web: Web) -> None:
    response = _trpc(web, '{"practitionerId":1}')
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"result"}
    assert set(body["result"]) == {"data"}
    rest = web.client.get("/api/practitioners/1/availability").get_json()
    assert body["result"]["data"] == rest


def test_trpc_call_with_service_and_dates_and_superjson_wrapper(web: Web) -> None:
    raw = '{"json":{"practitionerId":1,"serviceId":2,"from":"2030-01-07","to":"2030-01-07"}}'
    data = _trpc(web, raw).get_json()["result"]["data"]
    assert data["service_id"] == 2
    assert (data["from"], data["to"]) == ("2030-01-07", "2030-01-07")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        "1",
        "null",
        "{}",
        '{"practitionerId":"1"}',
        '{"practitionerId":true}',
        '{"practitionerId":1.5}',
        '{"practitionerId":99999999999999999999999}',
        '{"practitionerId":1,"serviceId":true}',
        '{"practitionerId":1,"serviceId":"2"}',
        '{"practitionerId":1,"serviceId":0}',
        '{"practitionerId":1,"from":5}',
        '{"practitionerId":1,"from":"2030-01-10","to":"2030-01-09"}',
        '{"practitionerId":1,"extra":1}',
    ],
)
def test_trpc_bad_input_is_422(web: Web, raw: str) -> None:
    assert_problem(_trpc(web, raw), 422, "validation_error")


def test_trpc_without_input_is_422(web: Web) -> None:
    response = web.client.get("/api/trpc/bookings.getAvailability")
    assert_problem(response, 422, "validation_error")


def test_trpc_unknown_practitioner_is_404(web: Web) -> None:
    assert_problem(_trpc(web, '{"practitionerId":99}'), 404, "not_found")
    assert_problem(_trpc(web, '{"practitionerId":1,"serviceId":99}'), 404, "not_found")


# -- errors from the router -----------------------------------------------------------------------


def test_unknown_path_is_a_404_problem(web: Web) -> None:
    assert_problem(web.client.get("/nowhere"), 404, "not_found")


def test_wrong_method_is_a_405_problem_with_allow(web: Web) -> None:
    response = web.client.delete("/api/practitioners")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


# -- OpenAPI and /docs ----------------------------------------------------------------------------

_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_openapi_is_3_1(web: Web) -> None:
    response = web.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"]
    assert "Problem" in doc["components"]["schemas"]


def test_openapi_documents_exactly_the_routes_of_the_app(web: Web) -> None:
    doc = web.client.get("/openapi.json").get_json()
    routed: set[tuple[str, str]] = set()
    for rule in web.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in (rule.methods or set()) - _IGNORED_METHODS:
            routed.add((_openapi_path(rule.rule), method.lower()))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations that no route serves"


def test_openapi_path_parameters_match_the_templates(web: Web) -> None:
    doc = web.client.get("/openapi.json").get_json()
    for path, item in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method)
            assert op.get("responses"), (path, method)


def test_openapi_references_resolve(web: Web) -> None:
    doc = web.client.get("/openapi.json").get_json()
    text = json.dumps(doc)
    for name in set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', text)):
        assert name in doc["components"]["schemas"], name


def test_openapi_documents_the_contracts_error_codes(web: Web) -> None:
    doc = web.client.get("/openapi.json").get_json()
    post = doc["paths"]["/api/bookings"]["post"]["responses"]
    assert {"201", "400", "404", "409", "422", "503"} <= set(post)
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_docs_page_renders_from_this_server_only(web: Web) -> None:
    response = web.client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    # No inline script or style (the page works under CSP default-src 'self'): files only.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert set(assets) == {"/docs/docs.js", "/docs/docs.css"}
    script = web.client.get("/docs/docs.js")
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert "/openapi.json" in script.get_data(as_text=True)
    assert web.client.get("/docs/docs.css").mimetype == "text/css"
    for text in (page, script.get_data(as_text=True)):
        assert re.findall(r"https?://", text) == []
        assert not re.search(r"""(src|href)\s*=\s*["']?//""", text)  # protocol-relative


# -- availability from an external calendar -------------------------------------------------------


def _calcom_web(*, failing: bool = False) -> Web:
    offered = [
        datetime(2030, 1, 8, 9, 0, tzinfo=UTC),
        datetime(2030, 1, 8, 14, 0, tzinfo=UTC),
        datetime(2030, 1, 8, 9, 30, tzinfo=UTC),
    ]  # 09:30 is off our hourly grid
    calendar = FakeCalendarGateway(
        links={1: CalendarLink(event_type="123456")},
        offered={"123456": offered},
        failing=failing,
    )
    return Web(calendar=calendar)


def test_availability_comes_from_the_linked_calendar() -> None:
    web = _calcom_web()
    body = web.client.get("/api/practitioners/1/availability").get_json()
    assert body["source"] == "calcom"
    starts = [s["start"] for s in body["slots"]]
    assert SLOT in starts
    assert "2030-01-08T14:00:00Z" in starts
    assert "2030-01-08T10:00:00Z" not in starts  # in working hours, but not offered there
    web.booked(start="2030-01-08T14:00:00Z")
    assert "2030-01-08T14:00:00Z" not in web.slots()  # our own holds are subtracted
    assert_problem(web.book(start="2030-01-08T10:00:00Z"), 422, "outside_availability")


def test_availability_falls_back_to_the_schedule_when_the_calendar_is_down() -> None:
    web = _calcom_web(failing=True)
    body = web.client.get("/api/practitioners/1/availability").get_json()
    assert body["source"] == "schedule"
    assert len(body["slots"]) == 28
