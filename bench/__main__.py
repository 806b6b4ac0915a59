"""``python -m bench``: every benchmark, one table (see bench/run.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import main

raise SystemExit(main())
