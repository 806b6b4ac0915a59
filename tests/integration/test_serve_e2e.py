"""End to end: the real ``booking serve`` process on PostgreSQL, driven over HTTP.

It migrates and seeds an empty database by itself, runs the offline checkout (whose sessions
survive a restart), and under 40 concurrent requests for one slot answers exactly one 201 and
409 for all the others.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

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


def _environment(url: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BOOKING_DATA_DIR": str(data_dir),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "ADMIN_API_TOKEN": ADMIN,
        "RATELIMIT_BOOKINGS_PER_IP": "0",
        "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
        "LOG_LEVEL": "WARNING",
    }
    for name in (
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "CALCOM_API_KEY",
        "BOOKING_ENV",
        "SMTP_URL",
        "SECRET_KEY",
    ):
        env.pop(name, None)
    return env


def _launch(env: dict[str, str], port: int, log: Path, cwd: Path) -> Server:
    """Start ``booking serve`` and wait until it answers /readyz."""
    with log.open("a") as out:
        process = subprocess.Popen(
            [*_booking_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,  # no .env files of the developer's
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"booking serve exited early:\n{log.read_text()}", pytrace=False)
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                return Server(base, process, log)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"booking serve did not get ready:\n{log.read_text()}", pytrace=False)
        time.sleep(0.2)


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def server(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = pg_server.new_database("booking_e2e")
    port = _free_port()
    folder = tmp_path_factory.mktemp("serve")
    env = _environment(url, port, folder / "data")
    running = None
    try:
        running = _launch(env, port, folder / "serve.log", tmp_path_factory.mktemp("cwd"))
        yield running
    finally:
        if running is not None:
            _stop(running.process)
        pg_server.drop_database(url)


def _slots(server: Server, practitioner_id: int, service_id: int) -> list[dict[str, str]]:
    first = date.today() + timedelta(days=2)
    response = requests.get(
        server.url(f"/api/practitioners/{practitioner_id}/availability"),
        params={
            "service_id": service_id,
            "from": first.isoformat(),
            "to": (first + timedelta(days=14)).isoformat(),
        },
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
    lines = server.log.read_text().splitlines()
    assert any(
        line.startswith("booking service (development) on http://")
        and "PostgreSQL" in line
        and "payments: offline checkout" in line
        for line in lines
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
    paid = _pay(body["checkout_url"])
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


def _at(start: str) -> datetime:
    return datetime.fromisoformat(start.replace("Z", "+00:00"))


def _form_secret(checkout_url: str) -> str:
    page = requests.get(checkout_url, timeout=10)
    assert page.status_code == 200, page.text
    found = re.search(r'name="secret" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _pay(checkout_url: str, secret: str | None = None) -> requests.Response:
    return requests.post(
        checkout_url + "/pay",
        data={"secret": secret or _form_secret(checkout_url)},
        allow_redirects=False,
        timeout=10,
    )


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
        (
            "POST",
            "/api/bookings",
            {"data": "{not json", "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", "/api/bookings", {"json": {"practitioner_id": 2}}),
        (
            "POST",
            "/api/bookings",
            {
                "json": {
                    "practitioner_id": 2,
                    "service_id": 3,
                    "start": "2030-01-01T10:00:00",
                    "client": {},
                }
            },
        ),
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


def test_offline_checkout_survives_a_restart_without_cross_wiring(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """The seed's offline sessions lived in memory with a counter restarting at 1: after a
    restart new bookings got 409 and an old checkout page showed (and paid) the new booking."""
    url = pg_server.new_database("booking_e2e_restart")
    port = _free_port()
    env = _environment(url, port, tmp_path / "data")
    log, cwd = tmp_path / "serve.log", tmp_path / "cwd"
    cwd.mkdir()
    running = _launch(env, port, log, cwd)
    try:
        starts = [s["start"] for s in _slots(running, 2, 3)]
        start_a = starts[0]
        # Far enough apart that the service's buffers do not make them overlap.
        start_b = next(s for s in starts if _at(s) >= _at(start_a) + timedelta(hours=3))
        first = _book(running, start_a, email="first@example.com")
        assert first.status_code == 201, first.text
        first_secret = _form_secret(first.json()["checkout_url"])
        _stop(running.process)

        running = _launch(env, port, log, cwd)
        second = _book(running, start_b, email="second@example.com")
        assert second.status_code == 201, second.text  # the seed answered 409 here
        a, b = first.json(), second.json()
        assert a["checkout_url"] != b["checkout_url"]
        page_a = requests.get(a["checkout_url"], timeout=10).text
        page_b = requests.get(b["checkout_url"], timeout=10).text
        assert "first@example.com" in page_a
        assert "second@example.com" not in page_a
        assert "second@example.com" in page_b

        assert _pay(b["checkout_url"], first_secret).status_code == 404  # A's secret, B's page
        assert _pay(a["checkout_url"], first_secret).status_code == 303
        assert _pay(b["checkout_url"]).status_code == 303

        def booking(answer: dict[str, Any]) -> dict[str, Any]:
            return requests.get(  # type: ignore[no-any-return]
                running.url(f"/api/bookings/{answer['booking']['id']}"),
                headers={"Authorization": f"Bearer {answer['manage_token']}"},
                timeout=10,
            ).json()

        for answer, email in ((a, "first@example.com"), (b, "second@example.com")):
            assert booking(answer)["status"] == "confirmed"
            assert booking(answer)["client"]["email"] == email
        paid_once = booking(a)
        assert _pay(a["checkout_url"], first_secret).status_code == 303  # again: no change
        assert booking(a) == paid_once
        # The offline webhook secret is the data folder's, readable by its owner only.
        secret_file = tmp_path / "data" / "secrets" / "offline-webhook-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    finally:
        _stop(running.process)
        pg_server.drop_database(url)
