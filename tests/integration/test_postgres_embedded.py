"""The embedded server: processes on one data folder share it; the last one out stops it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from entrypoints.dev.embedded_postgres import start_embedded

JOIN = """
import sys
from entrypoints.dev.embedded_postgres import start_embedded
server = start_embedded(sys.argv[1])
print(server.port, flush=True)
sys.stdin.read()  # hold the server until the test closes our stdin (or kills us)
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="booking-embedded-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="booking", connect_timeout=3
        ) as connection:
            return connection.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def _join(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", JOIN, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


@pytest.mark.slow
def test_processes_share_the_server_and_the_last_one_stops_it(data_dir: Path) -> None:
    mine = start_embedded(data_dir)
    assert mine.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    other, port = _join(data_dir)
    try:
        assert port == mine.port  # joined, not a second server
        assert mine.stop() is False  # the other process still uses it
        assert _answers(port)
    finally:
        other.communicate(input="", timeout=30)  # it exits normally, releasing its handle
    assert not _answers(port)


@pytest.mark.slow
def test_a_crashed_process_does_not_keep_the_server_alive(data_dir: Path) -> None:
    mine = start_embedded(data_dir)
    other, port = _join(data_dir)
    other.kill()  # no chance to release its handle
    other.communicate(timeout=30)
    assert _answers(port)
    assert mine.stop() is True  # the dead process's registration is pruned
    assert not _answers(port)
