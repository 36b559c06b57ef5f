"""Planning, storing and executing runs: the planner, the locked record store, executors (local workers, Ray)
and the worker process that measures one cell. Imports measure, backends, models and core."""
