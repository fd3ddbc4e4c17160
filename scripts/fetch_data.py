"""Fetch the full data sets the ``full_data`` tests and the benchmarks read into ``data/shared/``.

``make data`` runs this (``make data MIRROR=DIR`` adds ``--mirror DIR``). Standard library only,
so it runs before ``make setup``::

    python3 scripts/fetch_data.py [--out data/shared] [--mirror ../shared/data] [--timeout 30] [--offline]

Every file has a pinned SHA-256 (:data:`FILES`): a file is accepted only when its bytes match,
whether it was already in place, copied from a mirror or downloaded, so a moved branch, a
truncated download or a wrong mirror can never pass for the data the tests were written
against. Sources are tried in order: the file already in ``--out``, each ``--mirror`` folder
(same layout as ``../shared/data``: ``stackexchange/beer/...``, ``toxicity/...``), then the
public origin, a GitHub raw URL pinned to a commit of the repository named in the data's
README. For each file the script prints where it came from, or, when nothing was reachable,
every source it tried and why it failed; the exit status is 1 if any file is missing.

OLID has no pinned download URL (its authors distribute it for research use, from
https://scholar.harvard.edu/malmasi/olid): fetch ``olid-training-v1.0.tsv`` from there yourself
and pass the folder holding ``toxicity/olid_train/`` as ``--mirror``.

The layout written under ``--out`` is the one the tests look for (tests/conftest.py: the full
data is ``$PULSE_SHARED_DATA``, else ``../shared/data``, else ``data/shared``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "data" / "shared"

_RAW = "https://raw.githubusercontent.com"
_BEER = f"{_RAW}/strokyl/elasticsearch_play/e672f7be188ca293b29017651f05162c4deca002/beer.stackexchange.com"
_DAVIDSON = f"{_RAW}/t-davidson/hate-speech-and-offensive-language"
_JIGSAW = f"{_RAW}/IBM/MAX-Toxic-Comment-Classifier/c3e5c86c1d9a503eead0e7a6f4d2532e118acaed/samples"
_KAGGLE = f"{_RAW}/amueller/kaggle_insults/185bb2b81f899392c26d519f3d25a77764efb7e9"


@dataclass(frozen=True)
class DataFile:
    """One file of the full data: where it goes (relative to ``--out``), its checksum, its origin."""

    path: str
    sha256: str
    size: int
    url: str | None  # None: no pinned public URL (see ``note``)
    note: str = ""


FILES: tuple[DataFile, ...] = (
    # beer.stackexchange.com data dump, CC BY-SA 3.0 Stack Exchange Inc. (copy in strokyl/elasticsearch_play)
    DataFile("stackexchange/beer/Posts.xml",
             "b4cb2e2aa5315debaae2853238f8907b1deae98d9553d544c4603bb5fe729ebf", 2244994, f"{_BEER}/Posts.xml"),
    DataFile("stackexchange/beer/Comments.xml",
             "3f7c849055d30ed65b6a63a3a7b576202ea2a86700cc0e199503b290999af076", 517839, f"{_BEER}/Comments.xml"),
    DataFile("stackexchange/beer/Votes.xml",
             "bdc2b4b4b290b62426c335f036bec40188b525ca86f535914e78011757def51c", 957779, f"{_BEER}/Votes.xml"),
    DataFile("stackexchange/beer/Users.xml",
             "50d8aed5ef1e1b5b1f54dee876b1e043c69e68338d76dbde921d4b2c5661d5a6", 1923530, f"{_BEER}/Users.xml"),
    DataFile("stackexchange/beer/Tags.xml",
             "98bd208b7b0764cec2a9787c9774ac5e7527aacff72afd57f273e1e30affaee2", 8709, f"{_BEER}/Tags.xml"),
    # Davidson et al. (ICWSM 2017), MIT
    DataFile("toxicity/davidson/labeled_data.csv",
             "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281", 2546446,
             f"{_DAVIDSON}/6a1e3f02522963d820e302c3ad48b189552c143b/data/labeled_data.csv"),
    DataFile("toxicity/davidson/LICENSE",
             "3ec8d318cf9e36fe40da3081f5a64ebe3d198ebf85a330cbebc84de90a047fb2", 1069,
             f"{_DAVIDSON}/8cf116aa60e0d037c2201c5a8add4c80c81f208c/LICENSE"),
    # Jigsaw Toxic Comment Classification sample, CC0 (IBM/MAX-Toxic-Comment-Classifier)
    DataFile("toxicity/jigsaw_sample/test_examples.csv",
             "8fc93924348c6567dc0628506b9712f90ec63de2bdd17f57406a3295a6ff2028", 38610, f"{_JIGSAW}/test_examples.csv"),
    DataFile("toxicity/jigsaw_sample/README.md",
             "575892bb70c9794775df0007c0861973e2c0e4e26b50570ea4141c31fbb2325c", 699, f"{_JIGSAW}/README.md"),
    # Kaggle "Detecting Insults in Social Commentary" training set (copy in amueller/kaggle_insults)
    DataFile("toxicity/kaggle_insults/train.csv",
             "523e0215c52ac483a4e6fe6ae078cd5d436221f07a89331edc572dca44e4c11e", 850466, f"{_KAGGLE}/train.csv"),
    # OLID (Zampieri et al., NAACL 2019), research use
    DataFile("toxicity/olid_train/olid-training-v1.0.tsv",
             "d976bd6faf7800571d06aa4fda00c11c1d39e6fd139747067f683d0c6e76d31f", 1975156, None,
             "no pinned public URL: get OLIDv1.0 from https://scholar.harvard.edu/malmasi/olid (research use) and pass --mirror"),
)  # fmt: skip


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "community-pulse fetch_data"})
    with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as f:
        shutil.copyfileobj(response, f)


def _install(candidate: Path, item: DataFile, target: Path, *, move: bool) -> str | None:
    """Put ``candidate`` at ``target`` if its checksum is the pinned one; else the reason it is refused."""
    got = sha256(candidate)
    if got != item.sha256:
        size = candidate.stat().st_size
        return (
            f"checksum mismatch (sha256 {got[:12]}..., {size:,} bytes; want {item.sha256[:12]}..., {item.size:,} bytes)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    (shutil.move if move else shutil.copyfile)(str(candidate), str(tmp))
    os.replace(tmp, target)
    return None


def fetch_one(
    item: DataFile, out: Path, mirrors: list[Path], timeout: float, *, offline: bool = False
) -> tuple[bool, str]:
    """Make ``out/item.path`` hold the pinned bytes (no download when ``offline``). Returns (done, one line saying how or why not)."""
    target = out / item.path
    if target.is_file() and sha256(target) == item.sha256:
        return True, f"ok       {item.path} (already there)"
    tried: list[str] = []
    if target.is_file():
        tried.append(f"{target}: checksum mismatch, replaced if a source has the right bytes")
    for mirror in mirrors:
        candidate = mirror / item.path
        if not candidate.is_file():
            tried.append(f"mirror {candidate}: not there")
            continue
        refused = _install(candidate, item, target, move=False)
        if refused is None:
            return True, f"ok       {item.path} (copied from {mirror})"
        tried.append(f"mirror {candidate}: {refused}")
    if item.url is None:
        tried.append(item.note)
    elif offline:
        tried.append(f"{item.url}: not tried (--offline)")
    else:
        with tempfile.TemporaryDirectory(prefix="pulse-fetch-") as tmp:
            part = Path(tmp) / "download"
            try:
                _download(item.url, part, timeout)
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                reason = getattr(err, "reason", None) or err
                tried.append(f"{item.url}: unreachable ({reason})")
            else:
                refused = _install(part, item, target, move=True)
                if refused is None:
                    return True, f"ok       {item.path} (downloaded from {item.url})"
                tried.append(f"{item.url}: {refused}")
    return False, f"MISSING  {item.path}: " + "; ".join(tried)


def main(argv: list[str] | None = None, files: tuple[DataFile, ...] = FILES) -> int:
    parser = argparse.ArgumentParser(
        description="Fetch the full test and benchmark data (pinned sha256) into data/shared/."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to put the files (default: data/shared)")
    parser.add_argument(
        "--mirror",
        type=Path,
        action="append",
        default=[],
        help="a local folder with the same layout (e.g. ../shared/data), tried before the network; repeatable",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per download attempt (default 30)")
    parser.add_argument(
        "--offline", action="store_true", help="never download: the files in place and the mirrors only"
    )
    args = parser.parse_args(argv)
    missing = 0
    for item in files:
        done, line = fetch_one(item, args.out, args.mirror, args.timeout, offline=args.offline)
        missing += not done
        print(line, flush=True)
    if missing:
        print(
            f"\n{missing} of {len(files)} files could not be fetched into {args.out}. Without them the full_data tests are "
            "deselected (CI=true fails them) and the benchmarks stop. Offline? Copy the files from a machine that has them "
            "and run `make data MIRROR=DIR` (DIR laid out like ../shared/data).",
            file=sys.stderr,
        )
        return 1
    print(f"\nall {len(files)} files in {args.out}, checksums verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
