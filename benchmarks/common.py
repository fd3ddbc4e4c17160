"""Shared benchmark machinery: configuration, data paths, machine facts, timing, workers, reports.

* :class:`BenchConfig` says how hard to push (``profile``: ``smoke`` for the tests, ``quick``,
  ``full``), which beer-dump scale factors to use and where bulky outputs go.
* :func:`machine_info` records cores, RAM, CPU model, Python and key package versions, the
  date and the load average (the machine may be shared: figures are only comparable within a
  run, which is why every comparison in these benchmarks is measured side by side).
* :func:`run_worker` runs one measurement in a fresh Python process and returns its JSON
  result plus the process's peak resident set size (``ru_maxrss``), so each measurement's
  peak memory is its own and imports made by one measurement cannot favour the next.
* :class:`RssSampler` samples the resident set size every few milliseconds, to attribute the
  peak to a pipeline step (by the step's start and end in ``ops.step_log``).
* :func:`update_section` replaces one ``<!-- bench:NAME:start -->`` ... ``end`` block of
  ``BENCHMARKS.md``, leaving every other section (e.g. "Model quality", written by the
  moderation work) untouched.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
RESULTS_JSON = REPO / "benchmarks" / "results" / "latest.json"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
RESULT_MARKER = "BENCH_RESULT "

Profile = Literal["smoke", "quick", "full"]

KEY_PACKAGES: tuple[str, ...] = (
    "duckdb", "polars", "pandas", "pyarrow", "lxml", "great-expectations", "torch", "transformers",
    "detoxify", "alt-profanity-check", "scikit-learn", "streamlit", "numpy",
)  # fmt: skip


def shared_data_dir() -> Path:
    """The full data sets (the tests use the same lookup): ``$PULSE_SHARED_DATA`` if set, else the first
    of ``../shared/data`` beside the repository and ``data/shared`` (where ``make data`` puts them) that exists."""
    if os.environ.get("PULSE_SHARED_DATA"):
        return Path(os.environ["PULSE_SHARED_DATA"]).resolve()
    candidates = (REPO.parent / "shared" / "data", REPO / "data" / "shared")
    return next((p.resolve() for p in candidates if p.is_dir()), candidates[0].resolve())


def _missing(what: str, path: Path) -> FileNotFoundError:
    where = "PULSE_SHARED_DATA" if os.environ.get("PULSE_SHARED_DATA") else "../shared/data nor data/shared"
    return FileNotFoundError(
        f"{what} not found at {path} (looked in {where}): run `make data` (downloads the public originals into "
        "data/shared/) or set PULSE_SHARED_DATA to a folder holding stackexchange/beer and toxicity/"
    )


def beer_dump_path() -> Path:
    """The real beer.stackexchange.com dump folder (read in place, never copied into the repo).

    Raises:
        FileNotFoundError: the folder is missing, with what to do (``make data`` or ``PULSE_SHARED_DATA``).
    """
    path = shared_data_dir() / "stackexchange" / "beer"
    if not (path / "Posts.xml").is_file():
        raise _missing("the beer.stackexchange dump", path)
    return path


def toxicity_dir() -> Path:
    """The folder of labelled toxicity sets (davidson, olid_train, kaggle_insults, jigsaw_sample).

    Raises:
        FileNotFoundError: the folder is missing, with what to do (``make data`` or ``PULSE_SHARED_DATA``).
    """
    path = shared_data_dir() / "toxicity"
    if not path.is_dir():
        raise _missing("the toxicity data sets", path)
    return path


def default_work_dir() -> Path:
    """Where bulky outputs go: ``$PULSE_BENCH_DIR`` or ``<tmp>/pulse-bench`` (never the repository)."""
    return Path(os.environ.get("PULSE_BENCH_DIR", Path(tempfile.gettempdir()) / "pulse-bench"))


@dataclass
class BenchConfig:
    """How a benchmark run is set up.

    Attributes:
        profile: ``full`` (the published figures), ``quick`` (minutes), ``smoke`` (seconds; the
            tests: structure and sanity, not speed).
        sizes: scale factors of the beer dump (1 = the real dump).
        work_dir: bulky outputs (scaled dumps, warehouses, snapshots, checkpoints).
        repeats: repetitions per measurement (the median is reported).
        in_process: run measurements in this process instead of fresh workers (the smoke
            tests; peak memory is then the process's, not the measurement's).
        demo_scales: demo generator scales for the scale benchmark (20 gives 1M+ items).
    """

    profile: Profile = "full"
    sizes: tuple[int, ...] = (1, 10, 100)
    work_dir: Path = field(default_factory=default_work_dir)
    repeats: int = 3
    in_process: bool = False
    demo_scales: tuple[float, ...] = (1.0, 20.0)

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> BenchConfig:
        """Defaults per profile: full = sizes 1/10/100, 3 repeats; quick = 1/10, 1; smoke = 1, 1, in process."""
        base: dict[str, Any] = {
            "full": {"sizes": (1, 10, 100), "repeats": 3, "demo_scales": (1.0, 20.0)},
            "quick": {"sizes": (1, 10), "repeats": 1, "demo_scales": (1.0,)},
            "smoke": {"sizes": (1,), "repeats": 1, "demo_scales": (0.05,), "in_process": True},
        }[profile]
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(profile=profile, **base)


# --------------------------------------------------------------------------------------------
# Machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Cores, RAM (GiB), CPU model, OS, Python and key package versions, UTC date, load average, commit."""
    import psutil

    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in KEY_PACKAGES},
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _git_commit(),
    }


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on a shared machine shows here)."""
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------------------------
# Statistics


def median(values: Iterable[float]) -> float:
    """Median of ``values`` (NaN when empty)."""
    vals = list(values)
    return statistics.median(vals) if vals else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    vals = sorted(values)
    if not vals:
        return math.nan
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (wall seconds, its result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) on log(x): ~1 linear growth, ~0 constant, >1 superlinear.

    Returns None with fewer than two positive points.
    """
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    if den == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """This process's current resident set size, MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class RssSampler:
    """Samples this process's resident set size every ``interval`` seconds in a daemon thread.

    Use as a context manager; afterwards :meth:`peak_between` gives the peak RSS (MiB) within a
    wall-clock window (``time.time()`` seconds), e.g. one pipeline step's.
    """

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._proc.memory_info().rss / 2**20))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), self._proc.memory_info().rss / 2**20))

    def peak_between(self, start: float, end: float) -> float | None:
        """Peak RSS (MiB) among samples taken in ``[start, end]``; None when there are none."""
        window = [rss for t, rss in self.samples if start <= t <= end]
        return max(window) if window else None

    @property
    def peak(self) -> float:
        """Peak RSS (MiB) over all samples."""
        return max((rss for _, rss in self.samples), default=math.nan)


# --------------------------------------------------------------------------------------------
# Workers


class WorkerError(RuntimeError):
    """A measurement in a worker process failed; the message carries the tail of its stderr."""


def worker_env() -> dict[str, str]:
    """The environment of worker processes: the repository importable, Hugging Face offline."""
    env = dict(os.environ)
    # The caller's PYTHONPATH first: it may point at another checkout of the code under test.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(REPO)) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_worker(
    target: str, kwargs: dict[str, Any], *, in_process: bool = False, timeout: float = 3600
) -> dict[str, Any]:
    """Run ``target`` (``"module:function"``) with ``kwargs`` and return its dict result.

    In a fresh process (default): the result gains ``max_rss_mb`` (the worker's peak RSS, MiB)
    and ``wall_s`` (the worker's lifetime, imports included). In process (``in_process``): the
    function is called directly and ``max_rss_mb`` is this process's peak so far.

    Raises:
        WorkerError: the worker exited non-zero or printed no result (its stderr tail attached).
    """
    if in_process:
        module, func = target.split(":")
        fn = getattr(importlib.import_module(module), func)
        out = dict(fn(**kwargs))
        out.setdefault("max_rss_mb", round(peak_rss_mb(), 1))
        return out
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", target, json.dumps(kwargs, default=str)],
        # cwd outside the repository: no stray pulse.toml applies, and a PYTHONPATH pointing at
        # another checkout of the code under test wins over the working tree
        capture_output=True, text=True, cwd=tempfile.gettempdir(), env=worker_env(), timeout=timeout,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise WorkerError(f"worker {target} failed (exit {proc.returncode}):\n{tail}")
    out = json.loads(lines[-1][len(RESULT_MARKER) :])
    out["wall_s"] = round(wall, 3)
    return out


# --------------------------------------------------------------------------------------------
# Reports


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers are formatted by :func:`fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


def fmt(value: Any) -> str:
    """Human formatting: thousands separators, 3 significant digits for small floats, '–' for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        a = abs(value)
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.0f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        if a == 0:
            return "0"
        return f"{value:.3f}" if a >= 0.001 else f"{value:.2g}"
    return str(value).replace("|", "\\|")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


BENCHMARKS_MD_HEADER = """# Benchmarks

Figures measured by `python -m benchmarks.run` (`make bench`) on the machine described below; each
section says the exact command that reproduces it. Comparisons (ours against the plain
alternative) are measured side by side in the same run, so their ratios hold even when the
machine is shared. Bulky inputs (scaled dumps, warehouses) live in a temporary folder; the raw
figures are in `benchmarks/results/latest.json`.
"""


def update_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the ``<!-- bench:NAME:start/end -->`` block of ``path`` with ``body`` (or append it).

    Only that block is rewritten: other sections (another helper's, hand-written text) stay
    byte for byte. The file is re-read immediately before writing and replaced atomically.
    """
    start, end = _markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else BENCHMARKS_MD_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _m: block, text, count=1)
        if pattern.search(text)
        else text.rstrip("\n") + "\n\n" + block + "\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def update_results(name: str, record: dict[str, Any], path: Path = RESULTS_JSON) -> None:
    """Merge one benchmark's record into the JSON of the latest figures (other benchmarks kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            data = {}
    data.setdefault("benchmarks", {})[name] = record
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def update_machine(info: dict[str, Any], path: Path = RESULTS_JSON) -> None:
    """Record the machine facts in the results JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["machine"] = info
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def config_dict(cfg: BenchConfig) -> dict[str, Any]:
    """``cfg`` as JSON-able data."""
    d = asdict(cfg)
    d["work_dir"] = str(cfg.work_dir)
    return d
