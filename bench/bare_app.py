"""The floors for the HTTP benchmarks: bare Flask endpoints running the same SQL as ours.

GET availability runs the same occupancy query the availability endpoint needs (the
practitioner's pending and confirmed bookings overlapping a window) and returns the rows as
JSON; POST /api/bookings runs the same INSERT into the same ``bookings`` table, whose exclusion
constraint refuses an overlap (409). None of our layers, no validation, no payment provider.

POST /api/bookings/two-writes is a second, informative floor: the writes a booking takes by
design (DESIGN.md: the hold committed before the payment provider is called, then the
provider's session noted on the hold), bare, as ours sends them: two statements that each commit
on their own (the hold's INSERT, the UPDATE), on one pooled connection. The provider's session
is no write of ours: Stripe keeps it, and the offline checkout signs it into its id.

No pre-ping on checkout (ours sends none either: a pooled connection is checked by its socket).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request

_QUERY = sa.text(
    "SELECT id, starts_at, ends_at FROM bookings "
    "WHERE practitioner_id = :practitioner_id AND status IN ('pending', 'confirmed') "
    "AND tstzrange(occupied_start, occupied_end, '[)') && tstzrange(:start, :end, '[)') "
    "ORDER BY starts_at"
)

_INSERT = sa.text(
    "INSERT INTO bookings (practitioner_id, service_id, client_name, client_email, starts_at,"
    " ends_at, occupied_start, occupied_end, price_amount, price_currency, status,"
    " hold_expires_at, created_at, updated_at, version)"
    " VALUES (:practitioner_id, :service_id, :name, :email, :start, :end, :start, :end, 5500,"
    " 'gbp', 'pending', :hold, :now, :now, 1) RETURNING id"
)


_ATTACH = sa.text(
    "UPDATE bookings SET checkout_session_id = :sid, updated_at = :now, version = version + 1"
    " WHERE id = :booking_id AND version = 1"
)


def _insert_params(body: dict[str, Any]) -> dict[str, Any]:
    start = datetime.fromisoformat(body["start"])
    now = datetime.now(UTC)
    return {
        "practitioner_id": body["practitioner_id"],
        "service_id": body["service_id"],
        "name": body["client"]["name"],
        "email": body["client"]["email"],
        "start": start,
        "end": start + timedelta(minutes=30),
        "hold": now + timedelta(minutes=30),
        "now": now,
    }


def create_app() -> Flask:
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, pool_size=5)
    app = Flask(__name__)

    @app.get("/api/practitioners/<int:practitioner_id>/availability")
    def availability(practitioner_id: int):  # type: ignore[no-untyped-def]
        start = datetime.now(UTC)
        with engine.connect() as connection:
            rows = connection.execute(
                _QUERY,
                {
                    "practitioner_id": practitioner_id,
                    "start": start,
                    "end": start + timedelta(days=7),
                },
            ).all()
        return jsonify(
            slots=[{"start": r.starts_at.isoformat(), "end": r.ends_at.isoformat()} for r in rows]
        )

    @app.post("/api/bookings")
    def book():  # type: ignore[no-untyped-def]
        params = _insert_params(request.get_json())
        try:
            with engine.begin() as connection:
                booking_id = connection.execute(_INSERT, params).scalar_one()
        except sa.exc.IntegrityError:
            return jsonify(error="slot_unavailable"), 409
        return jsonify(booking={"id": booking_id}), 201

    @app.post("/api/bookings/two-writes")
    def book_in_two_writes():  # type: ignore[no-untyped-def]
        params = _insert_params(request.get_json())
        with engine.connect() as pooled:
            connection = pooled.execution_options(isolation_level="AUTOCOMMIT")
            try:
                booking_id = connection.execute(_INSERT, params).scalar_one()
            except sa.exc.IntegrityError:
                return jsonify(error="slot_unavailable"), 409
            sid = f"cs_bare_{secrets.token_hex(16)}"
            attach = {"sid": sid, "now": params["now"], "booking_id": booking_id}
            connection.execute(_ATTACH, attach)
        return jsonify(booking={"id": booking_id}, checkout_url=f"/checkout/{sid}"), 201

    return app
