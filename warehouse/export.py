"""CSV export shared by the dashboards and the CLI: spreadsheet formulas defused.

Exported cells may hold member-written text or moderators' notes. A spreadsheet opening the
CSV runs a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in some, tab or carriage
return) as a formula: OWASP "CSV Injection" (https://owasp.org/www-community/attacks/CSV_Injection).
Some spreadsheets also normalise the full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20
for = + - @) to the ASCII ones, so those are defused too. A risky cell gets a leading
apostrophe, which spreadsheets show as text and do not display.

This module sits in the warehouse layer so that both ``dashboards.data.to_csv`` and ``pulse
review decisions --csv`` use the same function.
"""

from __future__ import annotations

import polars as pl

FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet cell a formula (ASCII and full-width forms)."""


def defuse_cell(value: str) -> str:
    """``value`` with a leading ``'`` when it starts like a spreadsheet formula, else unchanged."""
    return "'" + value if value.startswith(FORMULA_START) else value


def defuse_formulas(df: pl.DataFrame, list_separator: str = "; ") -> pl.DataFrame:
    """``df`` with list columns joined by ``list_separator`` and every text cell defused (:func:`defuse_cell`)."""
    flat = df.with_columns(
        pl.col(name).cast(pl.List(pl.String)).list.join(list_separator)
        for name, dtype in df.schema.items()
        if isinstance(dtype, pl.List)
    )
    return flat.with_columns(_defuse(name) for name, dtype in flat.schema.items() if dtype == pl.String)


def to_csv_bytes(df: pl.DataFrame) -> bytes:
    """``df`` as UTF-8 CSV bytes with formulas defused (:func:`defuse_formulas`)."""
    return defuse_formulas(df).write_csv().encode("utf-8")


def _defuse(column: str) -> pl.Expr:
    risky = pl.any_horizontal(pl.col(column).str.starts_with(p) for p in FORMULA_START)
    return pl.when(risky).then(pl.lit("'") + pl.col(column)).otherwise(pl.col(column)).alias(column)
