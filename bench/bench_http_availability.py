"""Load: GET /api/practitioners/{id}/availability and the page GET /p/{id} under gunicorn, vs a
bare Flask endpoint.

Both run under the same gunicorn settings on the same database (DATABASE_URL, or an embedded
PostgreSQL), seeded with the sample practitioners and a few hundred bookings, and are loaded by
wrk (50 connections) when it is installed, else by a Python client. Prints requests/s, p50/p99
latency for each, and the ratio (goal: >= 0.5, with our p99 under 50 ms, the page's too: the
page renders the same availability use case for a week, plus the HTML).

    python bench/bench_http_availability.py [--seconds 10] [--connections 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
AVAILABILITY = "/api/practitioners/2/availability"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_database(url: str) -> None:
    from adapters.postgres import Database, migrate
    from booking_core.model import Booking, BookingStatus, Client, Interval
    from entrypoints.dev.sample_data import seed

    migrate.upgrade(url)
    database = Database.connect(url, pool_size=2)
    try:
        seed(database.unit_of_work())
        uow = database.unit_of_work()
        with uow:
            practitioner = uow.practitioners.get(2)
            assert practitioner is not None
            service = practitioner.services[0]
            existing = uow.bookings.list_occupying(
                2, Interval(datetime.now(UTC), datetime.now(UTC) + timedelta(days=90))
            )
            if not existing:
                now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                for i in range(300):
                    start = now + timedelta(hours=3 * i + 1)
                    uow.bookings.add(
                        Booking(
                            practitioner_id=2,
                            service_id=service.id or 0,
                            client=Client(name=f"Client {i}", email=f"c{i}@example.com"),
                            start=start,
                            end=start + service.duration,
                            buffer_before_minutes=service.buffer_before_minutes,
                            buffer_after_minutes=service.buffer_after_minutes,
                            price=service.price,
                            status=BookingStatus.CONFIRMED,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                uow.commit()
    finally:
        database.dispose()


def start_gunicorn(
    app: str, port: int, env: dict[str, str], workers: int, threads: int, chdir: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--chdir",
        str(chdir),
        app,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                requests.get(
                    f"http://127.0.0.1:{port}/api/practitioners/2/availability", timeout=2
                ).status_code
                == 200
            ):
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    detail = process.stderr.read().decode() if process.stderr else ""
    raise SystemExit(f"{app} did not start: {detail}")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load_wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The "Latency Distribution" block: lines like "     99%  123.45ms".
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1)) if errors else 0}


def load_python(url: str, seconds: int, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        session = requests.Session()
        while time.monotonic() < stop:
            started = time.perf_counter()
            ok = session.get(url, timeout=10).status_code == 200
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99)],
        "errors": float(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    server = None
    url = os.environ.get("DATABASE_URL")
    data_dir = None
    if not url:
        from entrypoints.dev.embedded_postgres import start_embedded

        data_dir = tempfile.mkdtemp(prefix="booking-bench-pg-")
        server = start_embedded(data_dir)
        url = server.url
    try:
        prepare_database(url)
        # Development (offline checkout, secrets of a throw-away data folder): the bench
        # measures availability, not a production deployment's settings.
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BOOKING_ENV": "development",
            "BOOKING_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="booking-bench-data-"),
            "RATELIMIT_BOOKINGS_PER_IP": "0",
            "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT / "bench") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        load = load_wrk if shutil.which("wrk") else load_python
        print(
            f"load generator: {'wrk' if load is load_wrk else 'python threads'}; "
            f"{args.connections} connections, {args.seconds} s; gunicorn "
            f"{args.workers} workers x {args.threads} threads"
        )
        results = {}
        ours_app = "entrypoints.flask_app:create_app()"
        for name, app, path in (
            ("bare Flask + 1 query", "bare_app:create_app()", AVAILABILITY),
            ("our availability", ours_app, AVAILABILITY),
            ("our page GET /p/2", ours_app, "/p/2"),
        ):
            port = free_port()
            process = start_gunicorn(app, port, env, args.workers, args.threads, ROOT / "bench")
            try:
                target = f"http://127.0.0.1:{port}{path}"
                load(target, 2, args.connections)  # warm-up
                results[name] = load(target, args.seconds, args.connections)
            finally:
                process.terminate()
                process.wait(timeout=20)
            r = results[name]
            print(
                f"{name:24s} {r['rps']:8.0f} req/s   p50 {r['p50']:6.1f} ms   "
                f"p99 {r['p99']:6.1f} ms   non-2xx {r['errors']:.0f}"
            )
        ours, bare = results["our availability"], results["bare Flask + 1 query"]
        print(
            f"ratio (ours / bare): {ours['rps'] / bare['rps']:.2f}  (goal >= 0.50); "
            f"our p99 {ours['p99']:.1f} ms (goal < 50 ms)"
        )
        page = results["our page GET /p/2"]
        print(
            f"page / JSON availability: {page['rps'] / ours['rps']:.2f}; "
            f"page p99 {page['p99']:.1f} ms (goal < 50 ms)"
        )
    finally:
        if server is not None:
            server.stop()
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
