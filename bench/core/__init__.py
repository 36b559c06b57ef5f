"""The foundation every other layer (and `backends`, `models`) builds on: the spec, settings and sweep, the
record and its statistics, errors, the call types backends and models share, and host facts.
It imports no backend, no model and no heavy library."""

#: The project's version, recorded in every record's environment.
__version__ = "0.1.0"
