"""Secrets for development generated once per data folder and kept there, readable by the owner.

Processes sharing a data folder (``booking serve`` restarted, several workers) agree on them;
another data folder gets other ones. Nothing here is a constant someone could read in the code.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

SECRETS_FOLDER = "secrets"


def data_folder(configured: str | None) -> Path:
    """``BOOKING_DATA_DIR`` when set, else the per-user data folder the embedded database uses."""
    if configured:
        return Path(configured)
    from entrypoints.dev.embedded_postgres import default_data_dir

    return default_data_dir()


def local_secret(folder: Path, name: str, *, prefix: str = "") -> str:
    """The secret ``name`` of ``folder``, created (mode 0600) on first use.

    The value is written to a file of its own and then hard-linked into place, which fails when
    the name exists: two processes starting together end up with one value, never half of one.
    """
    directory = folder / SECRETS_FOLDER
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(prefix + secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text(encoding="ascii").strip()
