"""Analysis of records: the regression comparison, technique gains, the catch-up estimate and the trace
projection's validation. Imports runs, measure, backends, models and core; writes nothing."""
