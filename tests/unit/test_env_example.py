""".env.example documents every variable the settings read, and nothing they do not."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_by_settings() -> set[str]:
    source = (ROOT / "src/entrypoints/settings.py").read_text()
    names = set(re.findall(r'get\("([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'_int\(\s*env,\s*"([A-Z][A-Z0-9_]+)"', source))
    names |= {n for n in re.findall(r'"([A-Z][A-Z0-9_]+)"', source) if n.startswith("MANUS_")}
    return names


def _documented() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)}


def test_every_setting_is_documented_with_a_comment() -> None:
    documented = _documented()
    aliases = {n for n in _read_by_settings() if n.startswith("MANUS_")}
    missing = _read_by_settings() - aliases - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert aliases  # the seed's MANUS_OAUTH_* names are read too ...
    assert "MANUS_OAUTH_" in (ROOT / ".env.example").read_text()  # ... and mentioned there


def test_nothing_documented_is_unknown() -> None:
    known = _read_by_settings()
    pattern = re.compile(r"^CALCOM_(USER_ID|EVENT_TYPE|USERNAME)_\d+$")
    unknown = {n for n in _documented() - known if not pattern.match(n)}
    assert not unknown, f".env.example lists variables the code never reads: {sorted(unknown)}"
