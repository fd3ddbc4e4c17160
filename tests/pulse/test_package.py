"""The distribution as a user installs it: the wheel's contents, a run from a non-editable install, declared dependencies.

The editable install of ``make setup`` reads every file from the repository, so a file left out of
``[tool.setuptools.package-data]`` goes unnoticed there (the Discourse preset did). These tests
build the wheel from a copy of the sources, install it into a scratch virtual environment that
sees ``.venv``'s third-party packages but not the repository, and run ``pulse`` from outside it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# The import packages the wheel ships (pyproject [tool.setuptools.packages.find] include).
PACKAGES = ("pulse", "warehouse", "transforms", "moderation", "dashboards")
# Code run from the repository, not shipped: DAG files need the core dependencies, the
# benchmarks and tests may also use the optional ones (extras test, bench).
DAGS = ("dags",)
REPO_ONLY = ("benchmarks", "tests")


def _sources(tmp: Path) -> Path:
    """A copy of what the build reads (pyproject, README, the packages), so no build/ lands in the shared tree."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "data_docs")
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    return src


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the source copy it was built from)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _sources(tmp)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (whl,) = (tmp / "dist").glob("community_pulse-*.whl")
    return whl, src


@pytest.fixture(scope="module")
def scratch_venv(wheel: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtual environment with the wheel installed (not editable) that sees .venv's site-packages but not the repo.

    The wheel is installed before the ``.pth`` is written, so pip never sees the editable
    community-pulse of .venv. A path in a ``.pth`` file is only appended to ``sys.path``: the
    ``.pth`` files inside it (the editable finder's) are not executed.
    """
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            str(wheel[0]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (purelib / "_dot_venv_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    yield venv


def _env(tmp: Path) -> dict[str, str]:
    """A clean environment for the scratch venv: no PYTHONPATH, offline, state in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PULSE_SCORER="lexical",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        COLUMNS="200",
        PULSE_REVIEW_STORE_URL=f"sqlite:///{tmp / 'review.sqlite'}",
        PULSE_DATA_DOCS_DIR=str(tmp / "data_docs"),
    )
    return env


def test_wheel_ships_every_file_of_the_packages(wheel: tuple[Path, Path]) -> None:
    whl, src = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    expected = {
        p.relative_to(src).as_posix()
        for pkg in PACKAGES
        for p in (src / pkg).rglob("*")
        if p.is_file() and p.suffix != ".md"  # transforms/README.md documents the marts; it is not read at run time
    }
    assert expected - names == set()
    assert "warehouse/sources/presets/discourse.toml" in names
    assert len([n for n in names if n.startswith("warehouse/migrations/") and n.endswith(".sql")]) >= 8
    assert len([n for n in names if n.startswith("transforms/marts/") and n.endswith(".sql")]) >= 9
    assert "dashboards/views/review_queue.py" in names  # a namespace package: no __init__.py


def test_installed_wheel_runs_the_demo_and_finds_the_preset_outside_the_repo(
    scratch_venv: Path, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _env(tmp_path)
    python = scratch_venv / "bin" / "python"

    where = subprocess.run(
        [
            str(python),
            "-c",
            "import json, warehouse, pulse.cli, dashboards; "
            "print(json.dumps([warehouse.__file__, pulse.cli.__file__, dashboards.__file__]))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    for file in json.loads(where.stdout):
        assert Path(file).is_relative_to(scratch_venv), f"{file} does not come from the installed wheel"

    preset = subprocess.run(
        [
            str(python),
            "-c",
            "import json; from warehouse.sources.postgres import load_mapping, preset_names; "
            "m = load_mapping(preset='discourse'); "
            "print(json.dumps({'presets': preset_names(), 'name': m.name, 'queries': {k: q.stream for k, q in m.queries.items()}}))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert preset.returncode == 0, preset.stderr
    assert json.loads(preset.stdout) == {
        "presets": ["discourse"],
        "name": "discourse",
        "queries": {
            "users": "users",
            "posts": "content",
            "topics": "content",
            "post_actions": "engagement_events",
            "topic_views": "engagement_events",
        },
    }

    w, s = tmp_path / "w.duckdb", tmp_path / "s.duckdb"
    run = subprocess.run(
        [str(scratch_venv / "bin" / "pulse"), "run", "--source", "demo", "--warehouse", str(w), "--serving", str(s)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = re.sub(r"\s+", " ", run.stdout)
    assert "Scoring: 4,855 texts scored now, 0 already scored; model lexical:alt-profanity-check" in out
    assert "Flags: 194 items flagged" in out
    assert re.search(r"Expectations: staging \d+ passed / 0 failed; marts \d+ passed / 0 failed", out)
    con = duckdb.connect(str(w), read_only=True)
    try:
        counts = {
            t: con.execute(f"select count(*) from staging.{t}").fetchone()[0]
            for t in ("users", "content", "engagement_events")
        }
        migrations = con.execute("select count(*) from ops.migrations").fetchone()[0]
    finally:
        con.close()
    assert counts == {"users": 800, "content": 11_437, "engagement_events": 47_271}
    assert migrations == len(list((REPO / "warehouse" / "migrations").glob("[0-9][0-9][0-9]_*.sql")))
    con = duckdb.connect(str(s), read_only=True)
    try:
        queued = con.execute("select count(*) from marts.moderation_queue").fetchone()[0]
    finally:
        con.close()
    assert queued == 194


# --- every import of our code maps to a declared distribution ------------------------------------


def _norm(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req.strip()).group(0))  # type: ignore[union-attr]


def _with_umbrellas(names: set[str]) -> set[str]:
    """``names`` plus what an umbrella distribution among them requires unconditionally.

    An umbrella ships no module of its own (``apache-airflow`` installs ``apache-airflow-core`` and
    ``apache-airflow-task-sdk``, which provide ``airflow``): declaring it declares them.
    """
    shipping = {_norm(d) for dists in packages_distributions().values() for d in dists}
    out = set(names)
    for name in names - shipping:
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        out |= {_req_name(r) for r in requires if "extra ==" not in r}
    return out


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level module names imported (absolutely) by the .py files under ``folder`` -> the files."""
    found: dict[str, set[str]] = {}
    for file in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                local = (REPO / top).is_dir() or (file.parent / f"{top}.py").is_file()
                if top not in sys.stdlib_module_names and not local:
                    found.setdefault(top, set()).add(file.relative_to(REPO).as_posix())
    return found


def _undeclared(folders: tuple[str, ...], declared: set[str]) -> dict[str, list[str]]:
    providers = packages_distributions()
    missing = {}
    for folder in folders:
        for top, files in _imports(REPO / folder).items():
            dists = {_norm(d) for d in providers.get(top, [])}
            if not dists & declared:
                missing[f"{top} ({', '.join(sorted(dists)) or 'not installed'})"] = sorted(files)
    return missing


def test_every_import_maps_to_a_declared_distribution() -> None:
    project = PYPROJECT["project"]
    core = _with_umbrellas({_req_name(r) for r in project["dependencies"]})
    extras = _with_umbrellas({_req_name(r) for reqs in project["optional-dependencies"].values() for r in reqs})
    assert _undeclared(PACKAGES + DAGS, core) == {}
    assert _undeclared(REPO_ONLY, core | extras) == {}
    # the check sees real imports: scikit-learn arrives through alt-profanity-check too, yet is declared itself
    assert "sklearn" in _imports(REPO / "moderation") and "scikit-learn" in core
