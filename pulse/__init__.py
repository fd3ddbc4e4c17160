"""Community Pulse: settings, the ``pulse`` CLI and the pipeline steps shared by CLI and DAGs."""

#: The steps of one pipeline run, in order: the DAG's tasks and :func:`pulse.steps.run_pipeline`'s
#: calls. Here rather than in :mod:`pulse.steps` so the DAG file reads it without importing
#: DuckDB and polars at parse time.
STEPS: tuple[str, ...] = (
    "extract", "validate", "load", "ingest_decisions", "score", "transform", "validate_marts", "publish",
)
