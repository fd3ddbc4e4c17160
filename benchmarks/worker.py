"""Worker process entry: ``python -m benchmarks.worker module:function 'JSON kwargs'``.

Calls the function with the keyword arguments and prints one line
``BENCH_RESULT {json}``: the function's dict result plus ``max_rss_mb``, this process's peak
resident set size (MiB). Used by :func:`benchmarks.common.run_worker` so that every
measurement's peak memory is its own.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys

from benchmarks.common import RESULT_MARKER, peak_rss_mb


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` (``module:function``) with the JSON kwargs ``argv[1]``; print its result."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    target, raw = argv[0], argv[1] if len(argv) > 1 else "{}"
    module, func = target.split(":")
    fn = getattr(importlib.import_module(module), func)
    out = dict(fn(**json.loads(raw)))
    out["max_rss_mb"] = round(peak_rss_mb(), 1)
    sys.stdout.write(RESULT_MARKER + json.dumps(out, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
