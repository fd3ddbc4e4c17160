"""What every ``pulse`` command group shares: the console, settings or exit 2, logging, errors.

:mod:`pulse.cli` and its sub-apps (``cli_moderation``, ``cli_review``, ``cli_privacy``,
``cli_api``, ``cli_cluster``) import from here, so the sub-apps never import :mod:`pulse.cli`
and ``pulse.cli`` imports them at the top. Exit codes as everywhere in ``pulse``: 0 success,
1 failure, 2 bad input or configuration (the message names the option and the fix).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from pulse.settings import ConfigError, Settings, load_settings

# Wide enough for the summary tables when output goes to a pipe or a log (Rich assumes 80).
console = Console(width=shutil.get_terminal_size((150, 24)).columns)

WarehouseOpt = Annotated[
    Path | None,
    typer.Option("--warehouse", help="Warehouse DuckDB file [env PULSE_WAREHOUSE; default data/warehouse.duckdb]"),
]
ServingOpt = Annotated[
    Path | None,
    typer.Option("--serving", help="Serving snapshot DuckDB file [env PULSE_SERVING; default data/serving.duckdb]"),
]


def settings_or_exit(**overrides: Any) -> Settings:
    """:func:`pulse.settings.load_settings` with ``overrides``; on a bad setting print it and exit 2."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        console.print(f"[bold red]Configuration error[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None


def setup_logging(verbose: bool) -> None:
    """Log to stderr through Rich: INFO (DEBUG with ``verbose``); chatty libraries at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[
            RichHandler(console=Console(stderr=True, width=console.width), show_path=False, rich_tracebacks=False)
        ],
        force=True,
    )
    for noisy in ("great_expectations", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``Error: message`` (escaped, so member text cannot inject markup); return the Exit to raise."""
    console.print(f"[bold red]Error[/]: {escape(message)}")
    return typer.Exit(code)
