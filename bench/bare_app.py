"""The floors for the HTTP benchmarks: bare Flask endpoints running the same SQL as ours.

GET availability runs the same occupancy query the availability endpoint needs (the
practitioner's pending and confirmed bookings overlapping a window) and returns the rows as
JSON; POST /api/bookings runs the same INSERT into the same ``bookings`` table, whose exclusion
constraint refuses an overlap (409). None of our layers, no validation, no payment provider.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

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


def create_app() -> Flask:
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url, pool_size=5, pool_pre_ping=True)
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
        body = request.get_json()
        start = datetime.fromisoformat(body["start"])
        now = datetime.now(UTC)
        params = {
            "practitioner_id": body["practitioner_id"],
            "service_id": body["service_id"],
            "name": body["client"]["name"],
            "email": body["client"]["email"],
            "start": start,
            "end": start + timedelta(minutes=30),
            "hold": now + timedelta(minutes=30),
            "now": now,
        }
        try:
            with engine.begin() as connection:
                booking_id = connection.execute(_INSERT, params).scalar_one()
        except sa.exc.IntegrityError:
            return jsonify(error="slot_unavailable"), 409
        return jsonify(booking={"id": booking_id}), 201

    return app
