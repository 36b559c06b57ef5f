#!/usr/bin/env python3
"""Self-check benchmark: harness timing vs a bare perf_counter_ns loop (same as `bench selfcheck`).

PYTHONPATH=. python scripts/selfcheck.py --model bert-base --batch-size 1 --seq-len 128 --json out.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["selfcheck", *sys.argv[1:]]))
