"""`python -m bench` is the same as the `bench` console script -- including its import path: `-m` puts the
working directory first on sys.path, where a stray `psutil.py` (or any module named like a dependency) would be
imported instead of the real one. It is taken off again before anything else is imported, unless it is the
directory this project is imported from (a checkout run from its root)."""

import os
import sys


def _drop_working_directory() -> None:
    here = os.getcwd()
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here != project:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]


_drop_working_directory()

from bench.cli import main  # noqa: E402  (after the import path is safe)

if __name__ == "__main__":
    raise SystemExit(main())
