"""Measurement: the timed loop (warm-up until stable, stop on precision) and MLPerf LoadGen scenarios. Imports only
bench.core."""
