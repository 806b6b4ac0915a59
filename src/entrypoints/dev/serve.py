"""``booking serve``: the development server on the embedded (or configured) database."""

from __future__ import annotations

import logging
import signal
import threading

import attrs

from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings

log = logging.getLogger("booking.serve")


def prepare(settings: Settings) -> Deps:
    """Bootstrap, apply migrations, seed an empty database with the sample practitioners."""
    from adapters.postgres.migrate import upgrade

    deps = bootstrap(settings)
    try:
        url = deps.extras.get("database_url")
        if url:
            upgrade(url)
        added = seed(deps.uow())
        if added:
            log.info("seeded %d sample practitioners into the empty database", added)
    except BaseException:
        deps.close()
        raise
    return deps


def startup_line(deps: Deps, host: str, port: int) -> str:
    from entrypoints.flask_app import startup_line as line

    shown_host = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host  # noqa: S104
    return line(deps, f"http://{shown_host}:{port}")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(settings: Settings, *, host: str, port: int, worker: bool = True) -> None:
    """Run the Werkzeug development server until interrupted; stop everything on the way out."""
    from werkzeug.serving import run_simple

    from entrypoints import worker as worker_module
    from entrypoints.flask_app import create_app
    from entrypoints.web.headers import QuietRequestHandler

    configure_logging(settings.log_level, fmt=settings.log_format)
    if settings.base_url == "http://localhost:3000" and port != 3000:
        # BASE_URL left at its default: links (checkout, success page) must point at this port.
        settings = attrs.evolve(settings, base_url=f"http://localhost:{port}")
    # SIGTERM (a service manager, `timeout`, a test) ends the server like Ctrl-C does, so the
    # finally below runs and an embedded PostgreSQL is stopped instead of left behind.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    deps = prepare(settings)
    stop = threading.Event()
    thread = None
    try:
        app = create_app(deps)
        if worker:
            thread = threading.Thread(
                target=worker_module.run_forever, args=(deps, stop), name="worker", daemon=True
            )
            thread.start()
        print(startup_line(deps, host, port), flush=True)
        run_simple(
            host,
            port,
            app,
            threaded=True,
            use_reloader=False,
            use_debugger=False,
            request_handler=QuietRequestHandler,
        )
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        deps.close()
