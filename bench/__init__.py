"""catchup-bench: the harness core.

The core knows nothing of any particular backend or model: it turns a spec into a record through the
`backends` and `models` registries, stores records as versioned JSON Lines, and derives statistics from the
raw samples they keep.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
