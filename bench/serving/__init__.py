"""`bench serve`: a measured backend behind an OpenAI-compatible HTTP server (a baseline engine). Imports backends,
models and core."""
