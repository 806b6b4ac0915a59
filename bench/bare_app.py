"""The baseline for bench_http_availability: a bare Flask endpoint running one SQL query.

It runs the same occupancy query the availability endpoint needs (the practitioner's pending and
confirmed bookings overlapping a window) and returns the rows as JSON, with none of our layers.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, jsonify

_QUERY = sa.text(
    "SELECT id, starts_at, ends_at FROM bookings "
    "WHERE practitioner_id = :practitioner_id AND status IN ('pending', 'confirmed') "
    "AND tstzrange(occupied_start, occupied_end, '[)') && tstzrange(:start, :end, '[)') "
    "ORDER BY starts_at"
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

    return app
