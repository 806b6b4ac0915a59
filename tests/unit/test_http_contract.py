"""The OpenAPI document is generated from the views, and the tests' answers are held to it.

Every ``Web`` client in these tests is a ``ContractClient``: each answer's status must be
documented for its route and each JSON body must validate against the documented schema. The
tests here check that this probe catches what it should, and what the document must hold.
"""

from __future__ import annotations

import copy

import pytest
from flask import Response

from entrypoints.web.openapi import openapi_document

from .contract import ContractViolation, check_response
from .http_support import ADMIN, Web


@pytest.fixture
def web() -> Web:
    return Web()


def test_the_probe_catches_a_body_that_does_not_match_its_schema(web: Web) -> None:
    response = web.client.get("/api/practitioners/1")
    document = copy.deepcopy(openapi_document(web.app))
    document["components"]["schemas"]["PractitionerOut"]["properties"]["id"] = {"type": "string"}
    with pytest.raises(ContractViolation, match="does not match its schema"):
        check_response(web.app, document, "GET", "/api/practitioners/1", response)


def test_the_probe_catches_an_undocumented_status(web: Web) -> None:
    response = web.client.get("/api/practitioners/99")
    assert response.status_code == 404
    document = copy.deepcopy(openapi_document(web.app))
    del document["paths"]["/api/practitioners/{practitioner_id}"]["get"]["responses"]["404"]
    with pytest.raises(ContractViolation, match="answered 404"):
        check_response(web.app, document, "GET", "/api/practitioners/99", response)


def test_a_route_without_a_declared_operation_fails_the_document(web: Web) -> None:
    web.app.add_url_rule("/undeclared", "undeclared", lambda: Response("x"))
    with pytest.raises(LookupError, match="undeclared"):
        openapi_document(web.app)


def test_request_schemas_are_as_strict_as_the_server(web: Web) -> None:
    schemas = web.client.get("/openapi.json").get_json()["components"]["schemas"]
    for name in ("BookingRequest", "ClientIn", "RescheduleRequest", "AdminCancelRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    client = schemas["ClientIn"]["properties"]
    assert client["name"]["minLength"] == 1
    assert client["name"]["maxLength"] == 120
    assert client["email"]["maxLength"] == 254
    assert "pattern" in client["phone"]["anyOf"][0]
    start = schemas["BookingRequest"]["properties"]["start"]
    assert start["format"] == "date-time"
    assert "[0-5][0-9]" in start["pattern"]  # offset minutes below 60


def test_documented_statuses_cover_what_the_server_answers() -> None:
    web = Web(offline_checkout=True)
    paths = web.client.get("/openapi.json").get_json()["paths"]
    for op in ("cancel", "reschedule"):
        assert {"400", "415", "422"} <= set(
            paths[f"/api/bookings/{{booking_id}}/{op}"]["post"]["responses"]
        )
    assert "422" in paths["/api/admin/jobs"]["get"]["responses"]
    for action in ("pay", "cancel"):
        answer = paths[f"/dev/checkout/{{session_id}}/{action}"]["post"]["responses"]["404"]
        assert set(answer["content"]) == {"application/problem+json"}
    stripe = paths["/api/webhooks/stripe"]["post"]
    assert {p["name"]: p["required"] for p in stripe["parameters"]} == {"Stripe-Signature": True}
    key = paths["/api/bookings"]["post"]["parameters"][0]
    assert key["name"] == "Idempotency-Key"
    assert key["schema"]["pattern"]


def test_admin_jobs_with_an_unknown_status_is_a_documented_422(web: Web) -> None:
    response = web.client.get("/api/admin/jobs?status=x", headers=ADMIN)
    assert response.status_code == 422
    assert response.get_json()["errors"]["status"]


def test_id_parameters_are_documented_in_bigint_range(web: Web) -> None:
    paths = web.client.get("/openapi.json").get_json()["paths"]
    param = paths["/api/bookings/{booking_id}"]["get"]["parameters"][0]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def _documented(web: Web, method: str, template: str, status: int) -> dict[str, object]:
    doc = web.client.get("/openapi.json").get_json()
    responses = doc["paths"][template][method]["responses"]
    assert str(status) in responses, (method, template, status, sorted(responses))
    return responses[str(status)]  # type: ignore[no-any-return]


def test_what_schemathesis_found_undocumented_is_documented_now(web: Web) -> None:
    """Each answer below was sent by the server but missing from the document (or documented
    with another media type)."""
    created = web.booked()
    auth = {"Authorization": f"Bearer {created['manage_token']}"}
    booking_id = created["booking"]["id"]
    for action in ("cancel", "reschedule"):
        path = f"/api/bookings/{booking_id}/{action}"
        template = f"/api/bookings/{{booking_id}}/{action}"
        answer = web.client.post(path, data=b"{", content_type="application/json", headers=auth)
        assert answer.status_code == 400
        _documented(web, "post", template, 400)
        answer = web.client.post(path, data=b"x", content_type="text/plain", headers=auth)
        assert answer.status_code == 415
        _documented(web, "post", template, 415)
    answer = web.client.get("/api/admin/jobs?status=x", headers=ADMIN)
    assert answer.status_code == 422
    _documented(web, "get", "/api/admin/jobs", 422)
    web = Web(offline_checkout=True)
    for action in ("pay", "cancel"):
        answer = web.client.post(f"/dev/checkout/cs_unknown/{action}")
        assert answer.status_code == 404
        assert answer.mimetype == "application/problem+json"
        documented = _documented(web, "post", f"/dev/checkout/{{session_id}}/{action}", 404)
        assert set(documented["content"]) == {"application/problem+json"}  # type: ignore[call-overload]
    answer = web.client.get("/dev/checkout/cs_unknown")
    assert answer.mimetype == "application/problem+json"
    documented = _documented(web, "get", "/dev/checkout/{session_id}", 404)
    assert set(documented["content"]) == {"application/problem+json"}  # type: ignore[call-overload]
