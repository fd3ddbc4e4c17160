"""Labelled text sets for evaluating and training toxicity models.

Every loader returns the same frame, one row per labelled text::

    text: String     the text as a reader saw it (escapes decoded, wrapping quotes removed)
    label: Int8      1 = toxic / offensive / insulting, 0 = not
    source: String   where the row came from (a preset name or the file's stem)

Presets also carry **auxiliary labels** where their set has them (extra ``Int8`` columns, null
where the set says nothing; :data:`AUX_LABELS`): ``insult`` and ``identity_attack``, so a
multi-label model can learn them with the loss masked where a set lacks one (see
:mod:`moderation.train`):

- OLID: ``insult`` = sub-task B targeted insult (``OFF`` + ``TIN`` -> 1; ``NOT`` or untargeted
  ``UNT`` -> 0); ``identity_attack`` = sub-task C group target (``OFF`` + ``TIN`` + ``GRP`` -> 1;
  ``NOT``, ``UNT``, ``IND``, ``OTH`` -> 0).
- Davidson: ``identity_attack`` = class 0 hate speech (-> 1; 1 and 2 -> 0); no ``insult``.
- Kaggle insults: ``insult`` = ``Insult``; no ``identity_attack``.
- Jigsaw: ``insult`` = ``insult``, ``identity_attack`` = ``identity_hate`` (when the columns exist).

Files may be CSV (``.csv``), TSV (``.tsv``, ``.tab``, ``.txt``) or Parquet (``.parquet``,
``.pq``). Labels must be 0/1 (also ``true``/``false``) unless a ``label_map`` says how to map
the raw values, e.g. Davidson et al. (2017)'s ``class`` {0 hate speech, 1 offensive} -> 1,
{2 neither} -> 0. A value the map does not cover is an error naming the values found, never a
silent drop.

Presets (:data:`PRESETS`) describe the public sets this project tests and trains on, and are
recognised from a file's header when no columns are given:

- ``davidson``: ``tweet`` / ``class`` (0, 1 -> 1; 2 -> 0), Davidson et al., ICWSM 2017.
- ``olid``: ``tweet`` / ``subtask_a`` (OFF -> 1, NOT -> 0), Zampieri et al., NAACL 2019. The
  TSV's quoting is irregular, so it is read without a quote character and the stray wrapping
  quotes are removed per text.
- ``kaggle_insults``: ``Comment`` / ``Insult`` (Impermium, Kaggle 2012). Comments are wrapped
  in quotes and carry Python-style escapes (``\\xa0``, ``\\n``, ``\\u1ea1``, sometimes escaped
  twice); :func:`decode_python_escapes` decodes them.
- ``jigsaw``: ``comment_text`` / ``toxic`` (Jigsaw Toxic Comment Classification, 2018).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import duckdb

SCHEMA: dict[str, pl.DataType] = {"text": pl.String(), "label": pl.Int8(), "source": pl.String()}
"""Columns (and types) of every frame this module returns."""

AUX_LABELS: tuple[str, ...] = ("insult", "identity_attack")
"""Auxiliary label columns a preset may add (``Int8`` 0/1, null = the set does not label it);
``label`` itself is the ``toxicity`` label."""

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


class DatasetError(ValueError):
    """A labelled file cannot be read as asked; the message names the file, the column or
    value at fault and the fix."""


@dataclass(frozen=True)
class Preset:
    """How to read one public labelled set.

    Attributes:
        name: the ``source`` value its rows get.
        text_column / label_column: the columns holding the text and the raw label.
        label_map: raw label value -> 0/1 (None: the labels are already 0/1).
        quoting: ``standard`` CSV quoting, or ``none`` (read without a quote character, then
            strip wrapping quotes per text).
        python_escapes: decode Python-style escapes in the text.
        description: one line for humans (the model card repeats it).
        aux: auxiliary label -> SQL-free polars expression over the raw (string) columns giving
            0/1 (null where unknown); used only when the columns it reads exist.
    """

    name: str
    text_column: str
    label_column: str
    label_map: Mapping[str, int] | None = None
    quoting: str = "standard"
    python_escapes: bool = False
    description: str = ""
    aux: Mapping[str, tuple[tuple[str, ...], pl.Expr]] = field(default_factory=dict)


def _flag(condition: pl.Expr) -> pl.Expr:
    """0/1 ``Int8`` of a boolean expression (null stays null)."""
    return condition.cast(pl.Int8)


def _olid(column: str) -> pl.Expr:
    """An OLID sub-task column, stripped ('NULL' where the sub-task does not apply)."""
    return pl.col(column).str.strip_chars().str.strip_chars('"')


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "davidson",
            "tweet",
            "class",
            {"0": 1, "1": 1, "2": 0},
            description="Davidson et al. 2017 tweets: class 0 hate speech, 1 offensive -> 1; 2 neither -> 0",
            aux={"identity_attack": (("class",), _flag(pl.col("class").str.strip_chars() == "0"))},
        ),
        Preset(
            "olid",
            "tweet",
            "subtask_a",
            {"OFF": 1, "NOT": 0},
            quoting="none",
            description="OLID / OffensEval 2019 training tweets: subtask_a OFF -> 1, NOT -> 0",
            aux={
                "insult": (
                    ("subtask_a", "subtask_b"),
                    _flag(_olid("subtask_a") == "OFF") * _flag(_olid("subtask_b") == "TIN"),
                ),
                "identity_attack": (
                    ("subtask_a", "subtask_b", "subtask_c"),
                    _flag(_olid("subtask_a") == "OFF")
                    * _flag(_olid("subtask_b") == "TIN")
                    * _flag(_olid("subtask_c") == "GRP"),
                ),
            },
        ),
        Preset(
            "kaggle_insults",
            "Comment",
            "Insult",
            None,
            python_escapes=True,
            description="Kaggle 'Detecting Insults in Social Commentary' 2012 forum comments: Insult 0/1",
            aux={"insult": (("Insult",), _flag(pl.col("Insult").str.strip_chars() == "1"))},
        ),
        Preset(
            "jigsaw",
            "comment_text",
            "toxic",
            None,
            description="Jigsaw Toxic Comment Classification (Wikipedia talk comments): toxic 0/1",
            aux={
                "insult": (("insult",), _flag(pl.col("insult").str.strip_chars() == "1")),
                "identity_attack": (("identity_hate",), _flag(pl.col("identity_hate").str.strip_chars() == "1")),
            },
        ),
    )
}
"""Known public sets, keyed by name."""


@dataclass
class LoadedData:
    """A loaded labelled file and what was done to it.

    Attributes:
        frame: ``text, label, source`` (see :data:`SCHEMA`).
        path: the file read.
        sha256: hex digest of the file's bytes (for model cards and evaluation records).
        preset: the preset used, if any.
        rows_read: rows in the file.
        dropped_empty: rows dropped because the text was null or blank (counted, not silent).
        notes: anything else worth reporting.
    """

    frame: pl.DataFrame
    path: Path
    sha256: str
    preset: str | None
    rows_read: int
    dropped_empty: int
    notes: list[str] = field(default_factory=list)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt\\'\"])")


def decode_python_escapes(text: str) -> str:
    """Decode the Python-style escapes of the Kaggle insults set into the text a reader saw.

    The comments look like ``"You are\\xa0a fool.\\nBye"`` (wrapping double quotes, escapes as
    literal backslash sequences), sometimes escaped twice (``\\\\xc2\\\\xa0``: UTF-8 bytes
    written as escapes, then escaped again). Steps: strip one pair of wrapping double quotes;
    decode ``unicode_escape`` while escapes remain (at most three rounds); if the result is UTF-8
    bytes shown as Latin-1 characters (mojibake such as ``Ã©``), re-decode it as UTF-8.
    Text that fails to decode is returned as far as it decoded, never dropped.

    Examples:
        >>> decode_python_escapes('"don\\'t\\xa0go\\\\nnow"')
        "don't\\xa0go\\nnow"
    """
    s = text
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = s[1:-1]
    for _ in range(3):
        if not _ESCAPE.search(s):
            break
        try:
            s = s.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            break
    if any(0x80 <= ord(c) < 0x100 for c in s):
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            s = s.encode("latin-1").decode("utf-8")
    return s


def _strip_wrapping_quotes(text: str) -> str:
    """``"a ""b"" c"`` -> ``a "b" c`` for texts read without a quote character."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text


def read_table(path: Path, *, quoting: str = "standard") -> pl.DataFrame:
    """Read a CSV / TSV / Parquet file with every column as text.

    Raises:
        DatasetError: unknown extension, or the file cannot be parsed.
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labelled data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pl.read_parquet(path)
            return df.with_columns(pl.col(c).cast(pl.String) for c in df.columns)
        if suffix in {".csv", ".tsv", ".tab", ".txt"}:
            return pl.read_csv(
                path,
                separator="," if suffix == ".csv" else "\t",
                infer_schema=False,
                quote_char=None if quoting == "none" else '"',
                encoding="utf8-lossy",
            )
    except pl.exceptions.PolarsError as exc:
        raise DatasetError(f"{path}: cannot be parsed as {suffix[1:].upper()}: {exc}") from exc
    raise DatasetError(
        f"{path}: unknown file type {suffix!r}; use .csv, .tsv (or .tab/.txt, tab-separated) or .parquet"
    )


def detect_preset(columns: Sequence[str]) -> Preset | None:
    """The preset whose text and label columns a header has (first match), or None."""
    have = set(columns)
    for preset in PRESETS.values():
        if preset.text_column in have and preset.label_column in have:
            return preset
    return None


def map_labels(raw: pl.Series, label_map: Mapping[str, int] | None, *, where: str) -> pl.Series:
    """Map raw label values (strings) to 0/1 (``Int8``).

    Without ``label_map``: 0/1, 0.0/1.0, true/false, yes/no (case-insensitive). With it: the
    raw value (stripped) looked up exactly; mapped values must be 0 or 1.

    Raises:
        DatasetError: a value is null or not covered; the message lists the uncovered values
            (with counts) and how to map them.
    """
    values = raw.cast(pl.String).str.strip_chars()
    if label_map is None:
        lower = values.str.to_lowercase()
        mapped = pl.Series([1 if v in _TRUE else 0 if v in _FALSE else None for v in lower.to_list()], dtype=pl.Int8)
        hint = "labels must be 0/1 (or true/false); pass a label map such as --label-map 2=0 --label-map 1=1"
    else:
        bad_targets = {k: v for k, v in label_map.items() if v not in (0, 1)}
        if bad_targets:
            raise DatasetError(f"{where}: label map values must be 0 or 1, got {bad_targets}")
        mapped = pl.Series([label_map.get(v) if v is not None else None for v in values.to_list()], dtype=pl.Int8)
        hint = f"the label map covers {sorted(label_map)}; add the missing values (e.g. --label-map VALUE=0)"
    missing = mapped.is_null()
    if missing.any():
        uncovered = pl.DataFrame({"value": values.filter(missing)}).group_by("value").len().sort("len", descending=True)
        shown = ", ".join(f"{v!r} ({n})" for v, n in uncovered.head(8).iter_rows())
        raise DatasetError(f"{where}: {int(missing.sum())} labels cannot be mapped to 0/1: {shown}; {hint}")
    return mapped


def load_labelled(
    path: Path | str,
    text_column: str | None = None,
    label_column: str | None = None,
    *,
    label_map: Mapping[str, int] | None = None,
    source: str | None = None,
    preset: str | None = None,
    decode_escapes: bool | None = None,
    keep_columns: Sequence[str] = (),
) -> LoadedData:
    """Load one labelled file as ``text, label, source``.

    Columns come from the arguments, else from ``preset``, else from the preset recognised in
    the header (:func:`detect_preset`), else ``text`` and ``label`` when the file has them. An explicit ``label_map`` wins over the preset's.
    Rows whose text is null or blank are dropped and counted (``dropped_empty``).

    Args:
        path: CSV / TSV / Parquet file.
        text_column / label_column: column names (case-sensitive).
        label_map: raw label -> 0/1 (see :func:`map_labels`).
        source: value of the ``source`` column (default: the preset name, else the file stem).
        preset: a name in :data:`PRESETS` to force.
        decode_escapes: decode Python-style escapes (default: the preset's setting).
        keep_columns: further columns of the file to carry along (as text), e.g. a column to
            report metrics by. Without ``source``, a file's own ``source`` column (as in a
            model card's ``validation.parquet``) gives each row its source.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: unknown preset, missing column (the message lists the file's columns),
            unmappable labels, or an unreadable file.
    """
    path = Path(path)
    chosen: Preset | None = None
    if preset is not None:
        if preset not in PRESETS:
            raise DatasetError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        chosen = PRESETS[preset]
    df = read_table(path, quoting=chosen.quoting if chosen else "standard")
    if chosen is None and (text_column is None or label_column is None):
        chosen = detect_preset(df.columns)
        if chosen is not None and chosen.quoting != "standard":
            df = read_table(path, quoting=chosen.quoting)
    # no preset: our own layout (``text``, ``label``[, ``source``]), e.g. a model card's validation.parquet
    text_col = text_column or (chosen.text_column if chosen else "text" if "text" in df.columns else None)
    label_col = label_column or (chosen.label_column if chosen else "label" if "label" in df.columns else None)
    if text_col is None or label_col is None:
        raise DatasetError(
            f"{path}: name the text and label columns (--text-column, --label-column); "
            f"its columns are {df.columns} and match no known preset ({', '.join(PRESETS)})"
        )
    for role, col in (("text", text_col), ("label", label_col)):
        if col not in df.columns:
            raise DatasetError(f"{path}: no {role} column {col!r}; its columns are {df.columns}")
    use_preset = chosen if chosen and chosen.text_column == text_col and chosen.label_column == label_col else None
    labels = map_labels(
        df[label_col],
        label_map if label_map is not None else (use_preset.label_map if use_preset else None),
        where=f"{path} column {label_col!r}",
    )
    texts = df[text_col]
    if use_preset and use_preset.quoting == "none":
        texts = texts.map_elements(_strip_wrapping_quotes, return_dtype=pl.String)
    if decode_escapes if decode_escapes is not None else bool(use_preset and use_preset.python_escapes):
        texts = texts.map_elements(decode_python_escapes, return_dtype=pl.String)
    out = pl.DataFrame({"text": texts, "label": labels})
    if source is None and use_preset is None and "source" in df.columns and df["source"].null_count() == 0:
        out = out.with_columns(source=df["source"])  # e.g. a model card's validation.parquet
    else:
        out = out.with_columns(source=pl.lit(source or (use_preset.name if use_preset else path.stem), pl.String))
    extra = [c for c in keep_columns if c not in SCHEMA]
    for col in extra:
        if col not in df.columns:
            raise DatasetError(f"{path}: no column {col!r} to keep; its columns are {df.columns}")
    out = out.with_columns(df[c] for c in extra)
    if use_preset is None:  # our own layout (e.g. validation.parquet) may carry the auxiliary labels
        out = out.with_columns(
            pl.Series(c, [None if v in (None, "") else int(float(v)) for v in df[c].to_list()], dtype=pl.Int8)
            for c in AUX_LABELS
            if c in df.columns and c not in extra
        )
    if use_preset is not None:  # auxiliary labels the set carries (AUX_LABELS); null rows = unknown
        aux = {
            name: expr.alias(name)
            for name, (needs, expr) in use_preset.aux.items()
            if all(c in df.columns for c in needs) and name not in extra
        }
        if aux:
            out = out.with_columns(df.select(*aux.values()))
    keep = out["text"].is_not_null() & (out["text"].str.strip_chars() != "")
    dropped = int((~keep).sum())
    notes = [f"dropped {dropped} rows with empty text"] if dropped else []
    return LoadedData(
        frame=out.filter(keep).cast(SCHEMA),  # type: ignore[arg-type]
        path=path,
        sha256=file_sha256(path),
        preset=use_preset.name if use_preset else None,
        rows_read=df.height,
        dropped_empty=dropped,
        notes=notes,
    )


def parse_label_map(items: Sequence[str]) -> dict[str, int] | None:
    """``["0=1", "1=1", "2=0"]`` -> ``{"0": 1, "1": 1, "2": 0}`` (None for an empty list).

    Raises:
        DatasetError: an item is not ``VALUE=0`` or ``VALUE=1``.
    """
    if not items:
        return None
    out: dict[str, int] = {}
    for item in items:
        value, sep, target = item.rpartition("=")
        if not sep or target.strip() not in {"0", "1"}:
            raise DatasetError(f"bad label map entry {item!r}: write RAW=0 or RAW=1, e.g. --label-map OFF=1")
        out[value.strip()] = int(target)
    return out


# --- moderators' decisions ----------------------------------------------------------------

DECISION_LABELS: dict[str, int] = {"removed": 1, "approved": 0}
"""Final review state -> label: a flagged item a moderator removed is toxic (1); one approved is not (0).
``escalated`` carries no label (the item is still under review)."""


class DecisionsUnavailableError(LookupError):
    """The warehouse has no moderators' decisions to learn from (the message says why)."""


def load_decisions(con: duckdb.DuckDBPyConnection) -> LoadedData:
    """Moderators' decisions from ``moderation.decisions`` as labelled texts (source ``decisions``).

    The review store (append-only, one row per transition) is ingested into
    ``moderation.decisions`` by the pipeline's ``ingest_decisions`` step. The latest decision
    per ``(source, content_id)`` (by ``decided_at``, then ``item_version``) counts when its
    ``to_state`` is final; :data:`DECISION_LABELS` maps it to a label. The text is the item's
    title and body from ``staging.content``, joined as the scoring step joins them.

    Raises:
        DecisionsUnavailableError: no decision is final on an item whose text is still held.
    """
    from warehouse.db import frame as sql_frame

    labelled = ", ".join(f"'{v}'" for v in DECISION_LABELS)
    rows = sql_frame(
        con,
        f"""
        with latest as (
            select *, row_number() over (partition by source, content_id order by decided_at desc, item_version desc) as rn
            from moderation.decisions
        )
        select (select any_value(concat_ws(chr(10) || chr(10), nullif(c.title, ''), nullif(c.body_text, '')))
                from staging.content c where c.source = d.source and c.content_id = d.content_id) as text,
               d.to_state as decision
        from latest d where rn = 1 and d.to_state in ({labelled})
    """,
    )
    total = sql_frame(con, "select count(*) as n from moderation.decisions")["n"][0]
    rows = rows.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    if rows.is_empty():
        raise DecisionsUnavailableError(
            f"moderation.decisions holds {total} rows but no item's latest decision is approved or removed "
            "on a text still held; work the review queue (or train from --data files)"
        )
    out = pl.DataFrame(
        {
            "text": rows["text"],
            "label": pl.Series([DECISION_LABELS[d] for d in rows["decision"].to_list()], dtype=pl.Int8),
            "source": pl.Series(["decisions"] * rows.height, dtype=pl.String),
        }
    )
    digest = hashlib.sha256(
        "\n".join(f"{t}\t{y}" for t, y in out.select("text", "label").iter_rows()).encode("utf-8")
    ).hexdigest()
    return LoadedData(
        frame=out,
        path=Path("warehouse:moderation.decisions"),
        sha256=digest,
        preset=None,
        rows_read=int(total),
        dropped_empty=0,
        notes=[f"latest labelling decision per item: {out.height} of {total} decision rows"],
    )
