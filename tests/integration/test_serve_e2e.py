"""End to end: the real ``booking serve`` process on PostgreSQL, driven over HTTP.

It migrates and seeds an empty database by itself, runs the offline checkout, and under 40
concurrent requests for one slot answers exactly one 201 and 409 for all the others.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from conftest import PgServer

ADMIN = "e2e-admin-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _booking_command() -> list[str]:
    found = shutil.which("booking", path=str(Path(sys.executable).parent)) or shutil.which(
        "booking"
    )
    if found:
        return [found]
    return [sys.executable, "-c", "from entrypoints.cli import main; main()"]


class Server:
    def __init__(self, base: str, process: subprocess.Popen[str], log: Path) -> None:
        self.base = base
        self.process = process
        self.log = log

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def server(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = pg_server.new_database("booking_e2e")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "ADMIN_API_TOKEN": ADMIN,
        "RATELIMIT_BOOKINGS_PER_IP": "0",
        "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("STRIPE_SECRET_KEY", "CALCOM_API_KEY", "BOOKING_ENV", "SMTP_URL"):
        env.pop(name, None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [*_booking_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path_factory.mktemp("cwd"),  # no .env files of the developer's
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"booking serve exited early:\n{log.read_text()}", pytrace=False)
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"booking serve did not get ready:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield Server(base, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        pg_server.drop_database(url)


def _slots(server: Server, practitioner_id: int, service_id: int) -> list[dict[str, str]]:
    first = date.today() + timedelta(days=2)
    response = requests.get(
        server.url(f"/api/practitioners/{practitioner_id}/availability"),
        params={"service_id": service_id, "from": first.isoformat(),
                "to": (first + timedelta(days=14)).isoformat()},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "schedule"
    return body["slots"]  # type: ignore[no-any-return]


def _book(server: Server, start: str, email: str = "ada@example.com") -> requests.Response:
    return requests.post(
        server.url("/api/bookings"),
        json={
            "practitioner_id": 2,
            "service_id": 3,
            "start": start,
            "client": {"name": "Ada Lovelace", "email": email},
        },
        timeout=30,
    )


def test_startup_line_migrations_and_seed(server: Server) -> None:
    first_line = server.log.read_text().splitlines()
    assert any(
        "booking service on http://" in line and "PostgreSQL" in line and "fake" in line
        for line in first_line
    ), server.log.read_text()
    practitioners = requests.get(server.url("/api/practitioners"), timeout=10).json()["items"]
    assert [p["timezone"] for p in practitioners] == ["Europe/London", "America/New_York"]


def test_book_pay_offline_cancel_refund(server: Server) -> None:
    start = _slots(server, 2, 3)[0]["start"]
    created = _book(server, start)
    assert created.status_code == 201, created.text
    body = created.json()
    booking_id, token = body["booking"]["id"], body["manage_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert start not in [s["start"] for s in _slots(server, 2, 3)]

    page = requests.get(body["checkout_url"], timeout=10)
    assert page.status_code == 200
    assert "Pay" in page.text
    paid = requests.post(body["checkout_url"] + "/pay", allow_redirects=False, timeout=10)
    assert paid.status_code == 303
    success = requests.get(paid.headers["Location"], timeout=10)
    assert "confirmed" in success.text

    booking = requests.get(server.url(f"/api/bookings/{booking_id}"), headers=auth, timeout=10)
    assert booking.json()["status"] == "confirmed"
    cancelled = requests.post(
        server.url(f"/api/bookings/{booking_id}/cancel"), headers=auth, json={}, timeout=10
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["refund"]["status"] == "succeeded"
    assert start in [s["start"] for s in _slots(server, 2, 3)]


def _race(server: Server, start: str, clients: int = 40) -> list[int]:
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        barrier.wait()
        response = _book(server, start, email=f"client{n}@example.com")
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_forty_concurrent_requests_for_one_slot(server: Server) -> None:
    for round_number in range(2):
        start = _slots(server, 2, 3)[round_number]["start"]
        statuses = _race(server, start)
        assert sorted(statuses) == [201] + [409] * 39, statuses

    admin = requests.get(
        server.url("/api/admin/bookings"),
        params={"status": "pending"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()["items"]
    starts = [b["start"] for b in admin]
    assert len(starts) == len(set(starts))


def test_bad_input_never_5xx(server: Server) -> None:
    cases = [
        ("POST", "/api/bookings",
         {"data": "{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/api/bookings", {"json": {"practitioner_id": 2}}),
        ("POST", "/api/bookings", {"json": {"practitioner_id": 2, "service_id": 3,
                                            "start": "2030-01-01T10:00:00", "client": {}}}),
        ("GET", "/api/practitioners/999999999999/availability", {}),
        ("GET", "/api/practitioners/2/availability?from=2030-13-01", {}),
        ("GET", "/api/bookings/1", {}),
        ("POST", "/api/webhooks/stripe", {"data": b"{}"}),
    ]
    for method, path, extra in cases:
        response = requests.request(method, server.url(path), timeout=10, **extra)  # type: ignore[arg-type]
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
    assert server.process.poll() is None

