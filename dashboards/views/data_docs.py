"""Data Docs: the Great Expectations sites the latest run built, behind the sign-in.

Each pipeline run builds one GE Data Docs site per suite (``staging``, ``marts``,
``monitoring``) into ``PULSE_DATA_DOCS_DIR`` (default ``data/data_docs``, owner-only: the
validation pages can list sample unexpected values, i.e. members' data). The folder is not served
by Streamlit (static serving is off), so the sites are reachable only here, by data engineers and
admins (:data:`dashboards.auth.PIPELINE_ROLES`).

Why a download and not the page inline: a site is an ``index.html`` plus pages and assets it
links relatively (``validations/...``, ``static/...``), which an inline ``st.html`` or a
``srcdoc`` iframe cannot resolve, and GE's templates load Bootstrap, jQuery and fonts from public
CDNs, which would make the dashboards send requests off the machine. Each site is offered as a
zip (built in memory, cached per folder and modification time); unzipped, ``index.html`` and every
relative link work as GE built them.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import auth, components


def sites(docs: Path) -> list[Path]:
    """The suite folders under ``docs`` that hold an ``index.html``, by name (empty when ``docs`` is absent)."""
    if not docs.is_dir():
        return []
    return sorted(p.parent for p in docs.glob("*/index.html") if p.is_file())


def site_summary(site: Path) -> dict:
    """``{"suite", "built_at" (naive UTC, index.html's mtime), "validation_pages", "files", "size_kib"}``."""
    files = [p for p in site.rglob("*") if p.is_file() and not p.is_symlink()]
    built = datetime.fromtimestamp((site / "index.html").stat().st_mtime, UTC).replace(tzinfo=None)
    return {
        "suite": site.name,
        "built_at": built,
        "validation_pages": sum(1 for p in files if p.suffix == ".html" and "validations" in p.relative_to(site).parts),
        "files": len(files),
        "size_kib": round(sum(p.stat().st_size for p in files) / 1024),
    }


@st.cache_data(max_entries=8, show_spinner=False)
def zip_site(folder: str, mtime_ns: int) -> bytes:
    """The site at ``folder`` as a zip (paths relative to it; symlinks skipped). ``mtime_ns`` keys the cache."""
    site = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(site.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, path.relative_to(site).as_posix())
    return buffer.getvalue()


def render() -> None:
    """The Data Docs page (data engineers and admins)."""
    auth.require_role(auth.PIPELINE_ROLES, "Data Docs")
    from pulse.settings import load_settings

    st.title("Data Docs")
    st.caption(
        "Great Expectations' validation reports of the latest run, one site per suite. They can list "
        "sample unexpected values (members' data), so only data engineers and admins may open them. "
        "Download a site, unzip it and open index.html: its pages link each other and load their "
        "styles from public CDNs as Great Expectations built them."
    )
    docs = load_settings().data_docs_dir
    found = sites(docs)
    if not found:
        components.empty_state("No Data Docs built yet (each pipeline run builds them).")
        return
    summaries = [site_summary(site) for site in found]
    st.dataframe(pl.DataFrame(summaries), hide_index=True, width="stretch")
    columns = st.columns(len(found))
    for column, site in zip(columns, found, strict=True):
        index = site / "index.html"
        column.download_button(
            f"{site.name} (zip)",
            data=zip_site(str(site.resolve()), index.stat().st_mtime_ns),
            file_name=f"data_docs_{site.name}.zip",
            mime="application/zip",
            key=f"data_docs_{site.name}",
            icon=":material/download:",
            on_click="ignore",
        )


render()
