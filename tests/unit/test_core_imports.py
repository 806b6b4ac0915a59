"""booking_core loads nothing outside the standard library and attrs."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import booking_core

ALLOWED_THIRD_PARTY = {"attrs", "attr"}  # attrs ships both import names

PROBE = """
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import booking_core
names = ["booking_core"] + [
    m.name for m in pkgutil.walk_packages(booking_core.__path__, "booking_core.")
]
for name in names:
    importlib.import_module(name)
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print(json.dumps({"modules": names, "loaded": loaded, "file": booking_core.__file__}))
"""


def is_stdlib(name: str) -> bool:
    # sysconfig loads its platform data module, which stdlib_module_names does not list.
    return name in sys.stdlib_module_names or name.startswith("_sysconfigdata_")


def test_booking_core_imports_only_the_standard_library_and_attrs() -> None:
    src = str(Path(booking_core.__file__).parent.parent)  # the package as checked out
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, src],  # -I: a fresh interpreter, no env, no site-user
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert report["file"] == booking_core.__file__
    expected = {"booking_core." + m.name for m in pkgutil.iter_modules(booking_core.__path__)}
    assert expected <= set(report["modules"]), "every module under booking_core was imported"
    outside = {
        name
        for name in report["loaded"]
        if not is_stdlib(name) and name not in ALLOWED_THIRD_PARTY and name != "booking_core"
    }
    assert outside == set()


def test_the_probe_would_notice_a_third_party_import() -> None:
    """The check above is only worth something if a foreign import shows up in it."""
    probe = (
        "import sys, json; before = set(sys.modules); import hypothesis; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "hypothesis" in {name for name in loaded if not is_stdlib(name)}
