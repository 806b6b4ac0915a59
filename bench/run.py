"""Every benchmark in one command: ``python -m bench`` (or ``python bench/run.py``).

Runs, in order, on an embedded PostgreSQL of its own (or ``DATABASE_URL``'s server, in databases
it creates):

1. availability as a pure function (60 days, 500 occupying bookings);
2. GET availability and POST /api/bookings under gunicorn with 50 concurrent connections (wrk
   when installed, else Python threads), each beside a bare Flask endpoint running the same SQL
   (bench/bare_app.py: the occupancy query; the same INSERT into the same table with the
   exclusion constraint), with throughput, p50, p99 and the ratio to that floor;
3. peak RSS (VmHWM) of a web worker after the load and of a ``booking worker`` process;
4. the availability query at 1 000 and 1 000 000 bookings (bench_pg_availability);
5. the practitioner page /p/{id} beside the JSON endpoint.

The HTTP runs come in rounds (floor, then ours, for each endpoint), and the report takes the
median of the rounds, so a machine whose speed drifts between minutes still gives a steady
ratio.

Prints a table, writes bench/results.json and rewrites bench/RESULTS.md with the machine and
the date. ``--quick`` shortens every run (a smoke test, not figures to publish); ``model``
runs the stateful model test for longer instead (``python -m bench model --examples 200``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import requests  # noqa: E402

TARGETS = {
    "availability_ratio": 0.8,
    "post_ratio": 0.6,
    "growth": 1.5,
    "rss_mb": 150.0,
}
POST_PRACTITIONERS = 6  # practitioners whose calendars the POST load fills


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- 1. the pure function -------------------------------------------------------------------------


def pure_availability(repeat: int) -> dict[str, Any]:
    import bench_availability as b

    practitioner, service, occupied, now = b.build()
    count, median, p95 = b.measure(practitioner, service, occupied, now, repeat)
    return {"slots": count, "bookings": len(occupied), "median_ms": median, "p95_ms": p95}


# -- 2. HTTP under gunicorn -----------------------------------------------------------------------


@contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from entrypoints.dev.embedded_postgres import start_embedded

    folder = tempfile.mkdtemp(prefix="booking-bench-http-")
    server = start_embedded(folder, database="bench_http")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def add_post_practitioners(url: str) -> list[tuple[int, int]]:
    """Practitioners open 06:00-22:00 every day, a 30-minute service every 30 minutes."""
    from adapters.postgres import Database
    from booking_core.model import Money
    from entrypoints.dev.sample_data import sample_practitioner, sample_service

    db = Database.connect(url, pool_size=1)
    made = []
    try:
        uow = db.unit_of_work()
        with uow:
            for n in range(POST_PRACTITIONERS):
                p = uow.practitioners.add(
                    sample_practitioner(
                        name=f"Bench Practitioner {n}",
                        email=f"bench{n}@example.com",
                        timezone="UTC",
                        hours={d: ["06:00-22:00"] for d in range(7)},
                        services=[
                            sample_service(
                                name="Bench session",
                                duration_minutes=30,
                                price=Money(5500, "gbp"),
                                min_notice_minutes=60,
                                max_advance_days=60,
                                slot_interval_minutes=30,
                            )
                        ],
                    )
                )
                made.append((p.id or 0, p.services[0].id or 0))
            uow.commit()
    finally:
        db.dispose()
    return made


def booking_bodies(practitioners: list[tuple[int, int]]) -> list[str]:
    """One distinct, bookable request per line: every slot of every bench practitioner."""
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    bodies = []
    for day in range(58):
        for half_hour in range(12, 44):
            start = first + timedelta(days=day, minutes=30 * half_hour)
            for practitioner_id, service_id in practitioners:
                bodies.append(
                    json.dumps(
                        {
                            "practitioner_id": practitioner_id,
                            "service_id": service_id,
                            "start": start.isoformat().replace("+00:00", "Z"),
                            "client": {"name": "Bench Client", "email": "bench@example.com"},
                        }
                    )
                )
    random.Random(15).shuffle(bodies)
    return bodies


_POST_LUA = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  bodies = {}
  for line in io.lines("%(path)s") do bodies[#bodies + 1] = line end
end
function request()
  counter = counter + 1
  local i = ((counter * %(threads)d + id) %% #bodies) + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def reset_bookings(url: str, practitioners: list[tuple[int, int]]) -> None:
    import psycopg

    ids = ",".join(str(p) for p, _ in practitioners)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute(f"DELETE FROM bookings WHERE practitioner_id IN ({ids})")  # type: ignore[arg-type]
        conn.execute("DELETE FROM outbox_jobs")
        for table in ("offline_checkout_sessions", "idempotency_records"):
            conn.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]


def load_post_wrk(url: str, bodies_file: Path, seconds: int, connections: int) -> dict[str, float]:
    import bench_http_availability as h

    script = bodies_file.with_suffix(".lua")
    script.write_text(_POST_LUA % {"path": bodies_file, "threads": 2})
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import re

    Path(tempfile.gettempdir(), "booking-bench-wrk-post.txt").write_text(out)
    if not re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M):
        raise SystemExit(f"wrk measured nothing:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = h._ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = h._ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1)) if errors else 0}


def load_post_python(
    url: str, bodies: list[str], seconds: int, connections: int
) -> dict[str, float]:
    import statistics
    import threading

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    queue = iter(bodies)

    def client() -> None:
        nonlocal errors
        session = requests.Session()
        while time.monotonic() < stop:
            with lock:
                body = next(queue, None)
            if body is None:
                return
            began = time.perf_counter()
            status = session.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=30
            ).status_code
            with lock:
                latencies.append((time.perf_counter() - began) * 1000)
                errors += 0 if status == 201 else 1

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


def children_peak_rss_mb(parent: int) -> list[float]:
    """VmHWM (peak resident set) of each child of ``parent`` (gunicorn's workers), in MB."""
    peaks = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return peaks


def worker_peak_rss_mb(env: dict[str, str], seconds: float) -> float:
    command = [sys.executable, "-c", "from entrypoints.cli import main; main()", "worker"]
    process = subprocess.Popen(
        [*command, "--interval", "0.5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=BENCH,
    )
    try:
        time.sleep(seconds)
        status = Path(f"/proc/{process.pid}/status").read_text()
        return next(int(x.split()[1]) / 1024 for x in status.splitlines() if x.startswith("VmHWM"))
    finally:
        process.terminate()
        process.wait(timeout=20)


def _median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values))


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the rounds themselves."""
    return {key: _median([r[key] for r in runs]) for key in runs[0]} | {"rounds": runs}


def http(seconds: int, connections: int, workers: int, threads: int, rounds: int) -> dict[str, Any]:
    """Both servers run side by side; each round measures the floor, then ours, for GET and for
    POST (the bench calendars emptied before each POST run), so both see the same machine at
    nearly the same moment. On a shared or virtual machine throughput drifts by half between
    minutes; a ratio taken within one round is steady, and the report gives the median of the
    rounds' ratios (each round's figures are in results.json)."""
    import bench_http_availability as h

    load_get: Callable[[str, int, int], dict[str, float]]
    load_get = h.load_wrk if shutil.which("wrk") else h.load_python
    results: dict[str, Any] = {
        "load_generator": "wrk" if shutil.which("wrk") else "python threads",
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "gunicorn": f"{workers} workers x {threads} threads (gthread)",
    }
    with database() as url:
        log("preparing the database (sample practitioners, 300 bookings, bench calendars)")
        h.prepare_database(url)
        practitioners = add_post_practitioners(url)
        bodies = booking_bodies(practitioners)
        folder = Path(tempfile.mkdtemp(prefix="booking-bench-bodies-"))
        bodies_file = folder / "bodies.txt"
        bodies_file.write_text("\n".join(bodies) + "\n")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BOOKING_ENV": "development",
            "BOOKING_DATA_DIR": str(folder),
            "RATELIMIT_BOOKINGS_PER_IP": "0",
            "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(BENCH) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        env.pop("STRIPE_SECRET_KEY", None)  # the offline checkout: no network
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for name, app in (
                ("floor", "bare_app:create_app()"),
                ("ours", "entrypoints.flask_app:create_app()"),
            ):
                port = h.free_port()
                log(f"gunicorn {app} on port {port}")
                process = h.start_gunicorn(app, port, env, workers, threads, BENCH)
                servers[name] = (process, f"http://127.0.0.1:{port}")
            ours_base = servers["ours"][1]
            page = _has_practitioner_page(ours_base)
            for _, base in servers.values():
                load_get(f"{base}/api/practitioners/2/availability", 2, connections)  # warm-up
            if page:
                load_get(f"{ours_base}/p/2", 2, connections)

            def post(base: str, path: str = "/api/bookings") -> dict[str, float]:
                reset_bookings(url, practitioners)
                target = base + path
                if shutil.which("wrk"):
                    return load_post_wrk(target, bodies_file, seconds, connections)
                return load_post_python(target, bodies, seconds, connections)

            runs: dict[str, list[dict[str, float]]] = {}
            for n in range(1, rounds + 1):
                log(f"round {n} of {rounds}: GET and POST, the floor then ours")
                for name, (_, base) in servers.items():
                    target = f"{base}/api/practitioners/2/availability"
                    measured = load_get(target, seconds, connections)
                    runs.setdefault(f"get_{name}", []).append(measured)
                for name, (_, base) in servers.items():
                    runs.setdefault(f"post_{name}", []).append(post(base))
                floor_base = servers["floor"][1]
                two = post(floor_base, "/api/bookings/two-writes")
                runs.setdefault("post_two_writes", []).append(two)
                if page:
                    runs.setdefault("page", []).append(
                        load_get(f"{ours_base}/p/2", seconds, connections)
                    )
            for key, measured in runs.items():
                results[key] = _summary(measured)
            for kind in ("get", "post"):
                per_round = [
                    o["rps"] / f["rps"] if f["rps"] else 0.0
                    for f, o in zip(runs[f"{kind}_floor"], runs[f"{kind}_ours"], strict=True)
                ]
                results[f"{kind}_ratio_rounds"] = per_round
                results[f"{kind}_ratio"] = _median(per_round)
            results["post_two_writes_ratio"] = _median(
                [
                    t["rps"] / f["rps"] if f["rps"] else 0.0
                    for t, f in zip(runs["post_two_writes"], runs["post_floor"], strict=True)
                ]
            )
            results["post_vs_two_writes"] = _median(
                [
                    o["rps"] / t["rps"] if t["rps"] else 0.0
                    for o, t in zip(runs["post_ours"], runs["post_two_writes"], strict=True)
                ]
            )
            if page:
                results["page_vs_json"] = _median(
                    [
                        p["rps"] / g["rps"] if g["rps"] else 0.0
                        for p, g in zip(runs["page"], runs["get_ours"], strict=True)
                    ]
                )
            results["web_worker_rss_mb"] = max(children_peak_rss_mb(servers["ours"][0].pid))
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=20)
        log("booking worker: peak RSS over a few passes")
        results["worker_rss_mb"] = worker_peak_rss_mb(env, 8.0)
        reset_bookings(url, practitioners)
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _has_practitioner_page(base: str) -> bool:
    """Hook for the practitioner page (/p/{id}, issue of the pages branch): measured as soon as
    the app serves it; until then the table says it is not there yet."""
    try:
        answer = requests.get(f"{base}/p/2", timeout=5)
    except requests.RequestException:
        return False
    return answer.status_code == 200 and answer.headers.get("Content-Type", "").startswith(
        "text/html"
    )


# -- 4. the query at 1 000 and 1 000 000 rows ----------------------------------------------------


def query_growth(rows: list[int], repeat: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from bench_pg_availability import (
        add_practitioners,
        bench_database,
        fill_target_window,
        grow_to,
        measure,
    )

    from adapters.postgres import Database

    found: dict[str, Any] = {"sizes": []}
    with bench_database() as url:
        # Filling a million rows runs statements longer than the service's 5 s deadline.
        db = Database.connect(url, pool_size=2, statement_timeout_ms=600_000)
        try:
            target, service = add_practitioners(db)
            count = fill_target_window(db, service)
            next_k: dict[str, int] = {}
            for size in sorted(rows):
                log(f"filling bookings to {size:,} rows")
                count = grow_to(db, size, count, next_k)
                with db.engine.begin() as connection:
                    connection.execute(sa.text("ANALYZE bookings"))
                    count = connection.execute(
                        sa.text("SELECT count(*) FROM bookings")
                    ).scalar_one()
                    found["server"] = connection.execute(
                        sa.text("SHOW server_version")
                    ).scalar_one()
                figures = measure(db, target, service, repeat)
                found["sizes"].append({"rows": count, **figures})
        finally:
            db.dispose()
    first, last = found["sizes"][0], found["sizes"][-1]
    found["growth_query"] = float(last["query_median"]) / float(first["query_median"])
    found["growth_total"] = float(last["total_median"]) / float(first["total_median"])
    return found


# -- report ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory = f"{int(total) / 1024 / 1024:.1f} GB"
    except (OSError, IndexError, ValueError):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, figure, target, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []
    pure = results.get("pure")
    if pure:
        rows.append(
            (
                f"availability pure function, 60 days, {pure['bookings']} bookings",
                f"median {pure['median_ms']:.2f} ms, p95 {pure['p95_ms']:.2f} ms",
                "-",
                "-",
            )
        )
    web = results.get("http")
    if web:
        for kind, label, target in (
            ("get", "GET availability", TARGETS["availability_ratio"]),
            ("post", "POST /api/bookings", TARGETS["post_ratio"]),
        ):
            floor, ours = web[f"{kind}_floor"], web[f"{kind}_ours"]
            ratio = web[f"{kind}_ratio"]
            rounds = ", ".join(f"{r:.2f}" for r in web[f"{kind}_ratio_rounds"])
            for who, r in (("bare Flask floor", floor), ("ours", ours)):
                rows.append(
                    (
                        f"{label}, {who}",
                        f"{r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                        f"non-2xx {r['errors']:.0f}",
                        "-",
                        "-",
                    )
                )
            rows.append((f"{label}, ratio to the floor",
                         f"{ratio:.2f} (median of rounds: {rounds})",
                         f">= {target}", _verdict(ratio >= target)))  # fmt: skip
        two = web.get("post_two_writes")
        if two:
            rows.append(
                (
                    "POST, bare Flask running the booking's two writes (hold, attach)",
                    f"{two['rps']:.0f} req/s, p50 {two['p50']:.1f} ms, p99 "
                    f"{two['p99']:.1f} ms; {web['post_two_writes_ratio']:.2f} of the "
                    f"one-INSERT floor; ours is {web['post_vs_two_writes']:.2f} of it",
                    "-",
                    "-",
                )
            )
        page = web.get("page")
        rows.append(
            (
                "/p/{id} page (HTML, a week of slots), beside the JSON endpoint",
                f"{page['rps']:.0f} req/s, p50 {page['p50']:.1f} ms, p99 {page['p99']:.1f} ms; "
                f"{web['page_vs_json']:.2f} of GET availability's throughput"
                if page
                else "not served (no /p/{id} route answered)",
                "-",
                "-",
            )
        )
        for key, label in (("web_worker_rss_mb", "web worker"), ("worker_rss_mb", "worker")):
            if key in web:
                rows.append((f"peak RSS, {label}", f"{web[key]:.0f} MB",
                             f"<= {TARGETS['rss_mb']:.0f} MB",
                             _verdict(web[key] <= TARGETS["rss_mb"])))  # fmt: skip
    growth = results.get("growth")
    if growth:
        for size in growth["sizes"]:
            rows.append(
                (
                    f"availability query at {size['rows']:,} bookings",
                    f"query {size['query_median']:.2f} ms, with free_slots "
                    f"{size['total_median']:.2f} ms (median)",
                    "-",
                    "-",
                )
            )
        rows.append(("growth 1k -> 1M (query + free_slots)", f"x{growth['growth_total']:.2f}",
                     f"<= x{TARGETS['growth']}",
                     _verdict(growth["growth_total"] <= TARGETS["growth"])))  # fmt: skip
    return rows


def write_report(results: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> None:
    (BENCH / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (bench/run.py); the raw figures are in bench/results.json.",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; {m['os']}",
        f"- Python {m['python']}"
        + (f"; PostgreSQL {results['growth']['server']}" if results.get("growth") else ""),
    ]
    web = results.get("http")
    if web:
        lines.append(
            f"- HTTP: {web['load_generator']}, {web['connections']} connections, "
            f"{web['rounds']} rounds of {web['seconds']} s runs (the floor, then ours, in each "
            f"round; figures are medians over the rounds), gunicorn {web['gunicorn']}, load "
            "generator and servers on the same machine"
        )
    if results.get("quick"):
        lines.append("- **quick run** (`--quick`): short runs, smaller tables; not for comparison")
    lines += ["", "| what | figure | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    (BENCH / "RESULTS.md").write_text("\n".join(lines) + "\n")


def model(examples: int, steps: int) -> int:
    env = {
        **os.environ,
        "BOOKING_MODEL_EXAMPLES": str(examples),
        "BOOKING_MODEL_STEPS": str(steps),
        "BOOKING_MODEL_SEED": "random",
    }
    test = ROOT / "tests" / "integration" / "test_model_stateful.py"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", str(test)], env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=["all", "model"])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--seconds", type=int, default=8, help="per HTTP run")
    parser.add_argument("--rounds", type=int, default=3, help="HTTP rounds (medians reported)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--skip", nargs="*", default=[], choices=["pure", "http", "growth"])
    parser.add_argument("--examples", type=int, default=200, help="model: hypothesis examples")
    parser.add_argument("--steps", type=int, default=50, help="model: steps per example")
    args = parser.parse_args(argv)
    if args.what == "model":
        return model(args.examples, args.steps)
    if args.quick:
        args.seconds, args.rows, args.rounds = 3, [1_000, 20_000], 1
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    if "pure" not in args.skip:
        log("availability, the pure function")
        results["pure"] = pure_availability(50 if args.quick else 300)
    if "http" not in args.skip:
        results["http"] = http(
            args.seconds, args.connections, args.workers, args.threads, args.rounds
        )
    if "growth" not in args.skip:
        results["growth"] = query_growth(args.rows, 30 if args.quick else 200)
    rows = table(results)
    width = max(len(r[0]) for r in rows)
    for what, figure, target, verdict in rows:
        print(f"{what:<{width}}  {figure}  {target}  {verdict}")
    write_report(results, rows)
    print(f"\nwrote {BENCH / 'results.json'} and {BENCH / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
