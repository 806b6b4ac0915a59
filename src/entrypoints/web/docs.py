"""OpenAPI 3.1 document of the HTTP API and the /docs page.

Kept beside the code; tests check it against the routes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("docs", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _id(name: str, where: str = "path") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "integer", "minimum": 1},
    }


_BEARER = [{"bearer": []}]
_SESSION = [{"session": []}]
# Admin routes: the admin token, or the session cookie of a signed-in admin (+ X-CSRF-Token).
_ADMIN = [{"bearer": []}, {"session": []}]
_ERR_AUTH = {"401": _problem("No or malformed token"), "404": _problem("Unknown booking or token")}

_SCHEMAS: dict[str, Any] = {
    "Money": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {
            "amount": {"type": "integer", "description": "minor units, e.g. cents"},
            "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
        },
    },
    "Service": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "duration_minutes": {"type": "integer"},
            "price": _ref("Money"),
            "buffer_before_minutes": {"type": "integer"},
            "buffer_after_minutes": {"type": "integer"},
            "min_notice_minutes": {"type": "integer"},
            "max_advance_days": {"type": "integer"},
            "slot_interval_minutes": {"type": "integer"},
        },
    },
    "Practitioner": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "title": {"type": "string"},
            "bio": {"type": "string"},
            "timezone": {"type": "string", "description": "IANA time zone"},
            "services": {"type": "array", "items": _ref("Service")},
        },
    },
    "Slot": {
        "type": "object",
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
        },
    },
    "Availability": {
        "type": "object",
        "properties": {
            "practitioner_id": {"type": "integer"},
            "service_id": {"type": "integer"},
            "timezone": {"type": "string"},
            "source": {"type": "string", "enum": ["calcom", "schedule"]},
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "slots": {"type": "array", "items": _ref("Slot")},
        },
    },
    "Client": {
        "type": "object",
        "required": ["name", "email"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 120},
            "email": {"type": "string", "format": "email"},
            "phone": {"type": ["string", "null"]},
        },
    },
    "Refund": {
        "type": ["object", "null"],
        "properties": {
            "amount": {"type": "integer"},
            "currency": {"type": "string"},
            "status": {"type": "string", "enum": ["none", "pending", "succeeded", "failed"]},
        },
    },
    "Booking": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {
                "type": "string",
                "enum": ["pending", "confirmed", "completed", "expired", "cancelled"],
            },
            "practitioner_id": {"type": "integer"},
            "service_id": {"type": "integer"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "client": _ref("Client"),
            "price": _ref("Money"),
            "hold_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "refund": _ref("Refund"),
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "notes": {"type": "string"},
        },
    },
    "BookingRequest": {
        "type": "object",
        "required": ["practitioner_id", "service_id", "start", "client"],
        "additionalProperties": False,
        "properties": {
            "practitioner_id": {"type": "integer", "minimum": 1},
            "service_id": {"type": "integer", "minimum": 1},
            "start": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with offset; one of the offered slot starts",
            },
            "client": _ref("Client"),
            "notes": {"type": "string", "maxLength": 2000},
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "description": "stable machine-readable code"},
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "request_id": {"type": "string"},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string"},
            "payload": {"type": "object"},
            "status": {"type": "string", "enum": ["pending", "done", "parked"]},
            "attempts": {"type": "integer"},
            "last_error": {"type": "string"},
            "run_at": {"type": "string", "format": "date-time"},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["id", "open_id", "name", "email", "role", "practitioner_id",
                     "last_signed_in", "csrf_token"],
        "properties": {
            "id": {"type": "integer"},
            "open_id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "role": {"type": "string", "enum": ["user", "practitioner", "admin"]},
            "practitioner_id": {"type": ["integer", "null"]},
            "last_signed_in": {"type": ["string", "null"], "format": "date-time"},
            "csrf_token": {"type": "string"},
        },
    },
}

_AVAILABILITY_PARAMS = [
    _id("practitioner_id"),
    {"name": "service_id", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "first local date (default today)"},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "last local date, inclusive (default from + 6 days; at most 62 days)"},
]

_HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}

# The offline checkout's Pay / Cancel forms post the session's own secret (from its page).
_FORM_SECRET: dict[str, Any] = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}},
    }}},
}

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"})}}},
    "/readyz": {
        "get": {
            "summary": "Readiness: the database answers",
            "responses": {"200": _json({"type": "object"}), "503": _problem("Database down")},
        }
    },
    "/api/practitioners": {
        "get": {
            "summary": "Active practitioners",
            "responses": {
                "200": _json(
                    {"type": "object",
                     "properties": {"items": {"type": "array", "items": _ref("Practitioner")}}}
                )
            },
        }
    },
    "/api/practitioners/{practitioner_id}": {
        "get": {
            "summary": "One practitioner with services",
            "parameters": [_id("practitioner_id")],
            "responses": {"200": _json(_ref("Practitioner")), "404": _problem("Unknown")},
        }
    },
    "/api/practitioners/{practitioner_id}/availability": {
        "get": {
            "summary": "Open slots (Cal.com when linked, else working hours)",
            "parameters": _AVAILABILITY_PARAMS,
            "responses": {
                "200": _json(_ref("Availability")),
                "404": _problem("Unknown practitioner or service"),
                "422": _problem("validation_error"),
            },
        }
    },
    "/api/trpc/bookings.getAvailability": {
        "get": {
            "summary": (
                "The seed's tRPC call; input is JSON {practitionerId, serviceId?, from?, to?}"
            ),
            "parameters": [
                {"name": "input", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": _json(
                    {"type": "object",
                     "properties": {"result": {"type": "object",
                                               "properties": {"data": _ref("Availability")}}}}
                ),
                "404": _problem("Unknown practitioner"),
                "422": _problem("validation_error"),
            },
        }
    },
    "/api/bookings": {
        "post": {
            "summary": "Hold a slot and open a checkout",
            "parameters": [
                {"name": "Idempotency-Key", "in": "header",
                 "schema": {"type": "string", "maxLength": 255},
                 "description": "a retry with the same key and body returns the first answer"}
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("BookingRequest")}},
            },
            "responses": {
                "201": _json(
                    {"type": "object",
                     "properties": {"booking": _ref("Booking"),
                                    "checkout_url": {"type": "string"},
                                    "manage_token": {"type": "string"}}},
                    "Held; pay at checkout_url. The manage token is shown once.",
                ),
                "400": _problem("bad_request"),
                "404": _problem("not_found"),
                "409": _problem("slot_unavailable"),
                "415": _problem("unsupported_media_type"),
                "422": _problem("validation_error / outside_availability"),
                "429": _problem("rate_limited"),
                "503": _problem("payment_unavailable"),
            },
        }
    },
    "/api/bookings/{booking_id}": {
        "get": {
            "summary": "A booking (manage token or admin token)",
            "security": _BEARER,
            "parameters": [_id("booking_id")],
            "responses": {"200": _json(_ref("Booking")), **_ERR_AUTH},
        }
    },
    "/api/bookings/{booking_id}/cancel": {
        "post": {
            "summary": "Cancel; refund per the policy (admins may pass refund true/false)",
            "security": _BEARER,
            "parameters": [_id("booking_id")],
            "requestBody": {
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"reason": {"type": "string"},
                                   "refund": {"type": ["boolean", "null"]}}}}},
            },
            "responses": {
                "200": _json({"type": "object",
                              "properties": {"booking": _ref("Booking"),
                                             "refund": _ref("Refund")}}),
                **_ERR_AUTH,
                "409": _problem("invalid_transition"),
            },
        }
    },
    "/api/bookings/{booking_id}/reschedule": {
        "post": {
            "summary": "Move to another offered start",
            "security": _BEARER,
            "parameters": [_id("booking_id")],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["start"],
                    "properties": {"start": {"type": "string", "format": "date-time"},
                                   "reason": {"type": "string"}}}}},
            },
            "responses": {
                "200": _json({"type": "object", "properties": {"booking": _ref("Booking")}}),
                **_ERR_AUTH,
                "409": _problem("invalid_transition / slot_unavailable"),
                "422": _problem("validation_error / outside_availability"),
            },
        }
    },
    "/api/webhooks/stripe": {
        "post": {
            "summary": "Stripe events (signed with Stripe-Signature)",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": _json({"type": "object", "properties": {"received": {"type": "boolean"}}}),
                "400": _problem("invalid_signature / invalid_payload"),
            },
        }
    },
    "/api/webhooks/calcom": {
        "post": {
            "summary": "Cal.com webhook (X-Cal-Signature-256); BOOKING_CANCELLED cancels ours",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": _json({"type": "object", "properties": {"received": {"type": "boolean"}}}),
                "400": _problem("invalid_signature / invalid_payload"),
            },
        }
    },
    "/booking/success": {
        "get": {
            "summary": "Where Checkout sends the client after paying",
            "parameters": [{"name": "session_id", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _HTML, "404": _HTML},
        }
    },
    "/booking/cancel": {
        "get": {"summary": "Where Checkout sends the client who cancels",
                "responses": {"200": _HTML}}
    },
    "/dev/checkout/{session_id}": {
        "get": {
            "summary": "Offline checkout page (development without a Stripe key)",
            "parameters": [{"name": "session_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _HTML, "404": _problem("no such checkout session")},
        }
    },
    "/dev/checkout/{session_id}/pay": {
        "post": {"summary": "Offline checkout: pay", "requestBody": _FORM_SECRET, "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"303": {"description": "to the success page"},
                          "404": _problem("no such session, or not its secret")}}
    },
    "/dev/checkout/{session_id}/cancel": {
        "post": {"summary": "Offline checkout: cancel", "requestBody": _FORM_SECRET,
                 "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"303": {"description": "to the cancel page"},
                          "404": _problem("no such session, or not its secret")}}
    },
    "/api/admin/bookings": {
        "get": {
            "summary": "Bookings with filters (admin)",
            "security": _ADMIN,
            "parameters": [
                _id("practitioner_id", "query"),
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "from", "in": "query",
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "email", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
                {"name": "offset", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": _json({"type": "object",
                              "properties": {"items": {"type": "array",
                                                       "items": _ref("Booking")}}}),
                "401": _problem("unauthorized"),
                "422": _problem("validation_error"),
            },
        }
    },
    "/api/admin/bookings/{booking_id}": {
        "get": {
            "summary": "One booking (admin)",
            "security": _ADMIN,
            "parameters": [_id("booking_id")],
            "responses": {"200": _json(_ref("Booking")), "401": _problem("unauthorized"),
                          "404": _problem("not_found")},
        }
    },
    "/api/admin/bookings/{booking_id}/cancel": {
        "post": {
            "summary": "Admin cancel; refund true/false overrides the policy",
            "security": _ADMIN,
            "parameters": [_id("booking_id")],
            "responses": {
                "200": _json({"type": "object",
                              "properties": {"booking": _ref("Booking"),
                                             "refund": _ref("Refund")}}),
                "401": _problem("unauthorized"),
                "404": _problem("not_found"),
                "409": _problem("invalid_transition"),
            },
        }
    },
    "/api/admin/jobs": {
        "get": {
            "summary": "Background jobs; status=parked lists the ones that need a person",
            "security": _ADMIN,
            "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object",
                              "properties": {"items": {"type": "array", "items": _ref("Job")}}}),
                "401": _problem("unauthorized"),
            },
        }
    },
    "/auth/login": {
        "get": {
            "summary": "Sign in: 302 to the OpenID provider (code + PKCE S256, state, nonce)",
            "parameters": [{"name": "next", "in": "query",
                            "schema": {"type": "string", "default": "/"},
                            "description": "a path on this site to return to"}],
            "responses": {"302": {"description": "to the provider"},
                          "400": _problem("invalid_next"),
                          "503": _problem("signin_not_configured / signin_unavailable")},
        }
    },
    "/auth/callback": {
        "get": {
            "summary": "The provider's answer: checked, the user upserted, the session cookie set",
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("code", "state", "error")],
            "responses": {"302": {"description": "to next, signed in"},
                          "400": _problem("signin_failed (state, nonce or ID token refused)"),
                          "503": _problem("signin_not_configured / signin_unavailable")},
        }
    },
    "/auth/logout": {
        "post": {
            "summary": "Sign out (send X-CSRF-Token while signed in)",
            "security": _SESSION,
            "responses": {"204": {"description": "signed out"},
                          "403": _problem("csrf_failed")},
        }
    },
    "/api/me": {
        "get": {
            "summary": "The signed-in user, with the CSRF token for state-changing requests",
            "security": _SESSION,
            "responses": {"200": _json(_ref("Me")), "401": _problem("unauthorized")},
        }
    },
    "/openapi.json": {"get": {"summary": "This document",
                              "responses": {"200": _json({"type": "object"})}}},
    "/docs": {"get": {"summary": "This document, rendered", "responses": {"200": _HTML}}},
}


def openapi_document(*, offline_checkout: bool = False) -> dict[str, Any]:
    """The document; the offline checkout's paths only when it is served (development)."""
    paths = {p: v for p, v in PATHS.items() if offline_checkout or not p.startswith("/dev/")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Practitioner booking service",
            "version": "0.1.0",
            "description": "Book a practitioner, pay with Stripe Checkout, manage the booking.",
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "manage token (shown once at booking) or admin token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "booking_session",
                            "description": "set by /auth/callback; state-changing requests "
                                           "also send X-CSRF-Token (from GET /api/me)"},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    served = "offline_checkout" in current_app.extensions
    return jsonify(openapi_document(offline_checkout=served))


# A self-contained page: renders the document with a few lines of script, fetches nothing
# but /openapi.json from this server.
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Booking API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.6rem .9rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a7}.post{color:#06c}code{background:#f4f4f4;padding:0 .2rem}
details pre{background:#f8f8f8;padding:.6rem;overflow:auto;font-size:.8rem}</style></head>
<body><h1 id="title">Booking API</h1><p id="desc"></p><div id="ops">Loading…</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description;
  const ops = document.getElementById("ops"); ops.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement("div"); div.className = "op";
      const m = document.createElement("span"); m.className = "m " + method; m.textContent = method;
      const p = document.createElement("code"); p.textContent = path;
      const s = document.createElement("div"); s.textContent = op.summary || "";
      const d = document.createElement("details"); const sm = document.createElement("summary");
      sm.textContent = "responses: " + Object.keys(op.responses || {}).join(", ");
      const pre = document.createElement("pre"); pre.textContent = JSON.stringify(op, null, 2);
      d.append(sm, pre); div.append(m, p, s, d); ops.append(div);
    }
  }
});
</script></body></html>"""


@bp.get("/docs")
def docs_page() -> Response:
    return Response(_DOCS_PAGE, mimetype="text/html")
