"""Community Pulse: settings, the ``pulse`` CLI and the pipeline steps shared by CLI and DAGs."""

#: The steps of one pipeline run, in order: the DAG's tasks and :func:`pulse.steps.run_pipeline`'s
#: calls. Here rather than in :mod:`pulse.steps` so the DAG file reads it without importing
#: DuckDB and polars at parse time.
STEPS: tuple[str, ...] = (
    "extract",
    "validate",
    "load",
    "ingest_decisions",
    "score",
    "transform",
    "validate_marts",
    "publish",
)

#: The ``score`` step's tasks in the DAG: write the pending texts as partitions, score each
#: partition on any worker (dynamic task mapping), merge the results with one writer. ``pulse run``
#: runs the same plan in process as the single step ``score``.
SCORE_TASKS: tuple[str, ...] = ("plan_scoring", "score_partition", "merge_scores")

#: The DAG's tasks, in order: :data:`STEPS` with ``score`` fanned out into :data:`SCORE_TASKS`.
TASKS: tuple[str, ...] = tuple(t for step in STEPS for t in (SCORE_TASKS if step == "score" else (step,)))
