"""The production server (gunicorn, as the README runs it) names no version in ``Server``.

Werkzeug's development server is covered in tests/unit/test_http_headers.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

# The app under gunicorn, on memory adapters so the test needs no database (development
# settings: production refuses the memory fakes; the Server header does not depend on them).
_APP = """
from adapters.memory import InMemoryStore
from entrypoints.bootstrap import bootstrap
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

store = InMemoryStore()
settings = Settings(env="development", ratelimit_bookings_per_ip="0",
                    ratelimit_bookings_per_email="0")
app = create_app(bootstrap(settings, uow_factory=store.unit_of_work))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gunicorn_answers_without_versions(tmp_path: Path) -> None:
    (tmp_path / "header_probe_app.py").write_text(_APP)
    port = _free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(tmp_path),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "header_probe_app:app",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # The master accepts at once; the first answer waits for the worker to import
                # the app, which takes seconds on a busy machine.
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=15)
                break
            except (requests.ConnectionError, requests.Timeout):  # still booting on a busy box
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    output = (tmp_path / "gunicorn.log").read_text()
                    raise AssertionError(f"gunicorn did not start: {output}") from None
                time.sleep(0.1)
        assert answer.status_code == 200
        servers = answer.raw.headers.getlist("Server")
        assert servers == ["gunicorn"], servers
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
