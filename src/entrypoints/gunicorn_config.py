"""gunicorn settings for production: ``gunicorn -c python:entrypoints.gunicorn_config ...``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder, emptied at every start), every worker
writes its metrics there and ``/metrics`` sums them; a worker that exits is marked dead so its
live gauges stop counting.
"""

from __future__ import annotations

import os
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
timeout = 30
# A reverse proxy in front answers slow clients; gunicorn's sync workers must not wait on them.
keepalive = 2


def on_starting(server: Any) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
