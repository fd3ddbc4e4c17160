"""Community Pulse benchmarks: how fast each stage is, how cost grows with the community, how we compare.

Run everything with ``python -m benchmarks.run`` (``--quick`` for a short pass, ``--only NAME``
for one benchmark, ``--sizes 1,10,100`` for the scale factors of the beer dump). Each
benchmark is a module with ``NAME``, ``run(cfg) -> dict`` (JSON-serialisable figures) and
``render(result) -> str`` (its Markdown section of ``BENCHMARKS.md``):

================  ============================================================================
``ingest``        Stack Exchange dump parse + load, rows/s and peak RSS, against pandas.read_xml
                  + DuckDB / SQLite (``DataFrame.to_sql``) / row-by-row inserts, same files.
``scale``         the full pipeline (lexical scorer) on the beer dump scaled 1x/10x/100x
                  (:mod:`benchmarks.scale_dump`) and on the demo generator at 1M+ items: time
                  per stage from ``ops.step_log`` and peak RSS per stage.
``incremental``   one new daily interval on top of a warehouse holding 1x/10x/100x history.
``scoring``       texts/s of ``DetoxifyScorer`` (fp32 and onnx-int8) against plain
                  ``Detoxify.predict`` (same BERT-base- and MiniLM-shaped checkpoints, same
                  texts); the int8 path's score and ROC-AUC changes on the trained community
                  model; the lexical model against plain alt-profanity-check.
``dashboards``    each page's queries against the serving snapshot at each scale, p50/p95,
                  with and without the Streamlit cache.
``quality``       Great Expectations validation time per million rows.
``hotspots``      the history-dependent costs at the largest size, current path against the
                  proposed fix (reproduced in the benchmark, the project's code unchanged).
================  ============================================================================

Bulky outputs (scaled dumps, warehouses, checkpoints) go to a temporary folder
(``$PULSE_BENCH_DIR``, default ``/tmp/pulse-bench``), never into the repository; the figures go
to ``benchmarks/results/latest.json`` and ``BENCHMARKS.md``.
"""
