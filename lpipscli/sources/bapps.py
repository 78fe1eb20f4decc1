"""Human-judgment sets on disk: BAPPS 2AFC triplets, BAPPS JND pairs, MOS/DMOS lists.

Nothing is decoded here: readers check the layout and return small records in a fixed order (category,
then name). Every problem is one line naming the files involved (at most three, then a count).

Layouts (Zhang et al. 2018, ``richzhang/PerceptualSimilarity``):

* 2AFC: ``<category>/{ref,p0,p1}/NAME.png`` and ``<category>/judge/NAME.npy`` (fraction of people who
  preferred p1). The root is a category folder, or a folder of categories (a split such as ``val``).
* JND: ``<category>/{p0,p1}/NAME.png`` and ``<category>/same/NAME.npy`` (fraction who said "same").
* MOS: a CSV, Parquet or JSON Lines table with a reference path, a distorted path and a score per row;
  relative paths are relative to the table's folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from lpipscli.errors import PairingError, UsageError
from lpipscli.io.tables import read_rows

_SHOW = 3

#: image folders and the judgment folder of each layout
TWOAFC_DIRS = ("ref", "p0", "p1")
JND_DIRS = ("p0", "p1")


@dataclass(frozen=True)
class Triplet:
    """One 2AFC trial: ``judge`` is the fraction of people who found p1 closer to ``ref``."""

    category: str
    key: str
    ref: Path
    p0: Path
    p1: Path
    judge: float


@dataclass(frozen=True)
class JndPair:
    """One JND trial: ``same`` is the fraction of people who said p0 and p1 look the same."""

    category: str
    key: str
    p0: Path
    p1: Path
    same: float


@dataclass(frozen=True)
class MosItem:
    """One row of a MOS list: ``key`` is the row number (1-based, header excluded)."""

    key: str
    ref: Path
    dist: Path
    score: float


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def _files(folder: Path, npy: bool) -> dict[str, Path]:
    """Stem -> file of the images (or ``.npy`` files) directly in ``folder``; duplicate stems are an error."""
    from lpipscli.io.discovery import is_image_name

    out: dict[str, Path] = {}
    dupes: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if not (entry.suffix.lower() == ".npy" if npy else is_image_name(entry.name)):
            continue
        stem = PurePosixPath(entry.name).stem
        if stem in out:
            dupes.append(entry.name)
        out[stem] = entry
    if dupes:
        raise PairingError(f"{folder}: several files share a name with different extensions ({_names(dupes)})")
    return out


def _judgment(path: Path, what: str) -> float:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PairingError(f"{path}: not a readable .npy file ({exc})") from None
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size != 1 or not 0.0 <= value[0] <= 1.0:
        raise PairingError(f"{path}: expected one {what} fraction in [0, 1], got {value[:4].tolist()}")
    return float(value[0])


def _category_folders(root: Path, needed: tuple[str, ...], layout: str) -> list[Path]:
    """``root`` itself when it holds the layout's folders, else its subfolders that do (sorted)."""
    if not root.is_dir():
        raise PairingError(f"{root}: not a folder (expected a {layout} split or category folder)")
    if any((root / d).is_dir() for d in needed):
        return [root]
    cats = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")
            and any((p / d).is_dir() for d in needed)]
    if not cats:
        raise PairingError(f"{root}: no {layout} data: expected folders {', '.join(needed)} in it or in its "
                           "category subfolders")
    return cats


def _read_category(folder: Path, image_dirs: tuple[str, ...], judge_dir: str) -> tuple[dict[str, dict], dict]:
    """Per image folder: stem -> path, and the judgment files; errors name what is missing or extra."""
    missing_dirs = [d for d in (*image_dirs, judge_dir) if not (folder / d).is_dir()]
    if missing_dirs:
        raise PairingError(f"{folder}: missing folder(s) {', '.join(missing_dirs)}")
    images = {d: _files(folder / d, npy=False) for d in image_dirs}
    judged = _files(folder / judge_dir, npy=True)
    names = sorted(set(judged).union(*images.values()))
    problems = []
    for d, files in (*images.items(), (judge_dir, judged)):
        absent = [n for n in names if n not in files]
        if absent:
            shown = [n + (".npy" if d == judge_dir else _image_suffix(images, n)) for n in absent]
            problems.append(f"{len(absent)} missing in {folder / d} ({_names(shown)})")
    if problems:
        raise PairingError(f"{folder}: incomplete trials: " + "; ".join(problems))
    if not names:
        raise PairingError(f"{folder}: no trials ({judge_dir}/*.npy is empty)")
    return images, judged


def _image_suffix(images: dict[str, dict[str, Path]], name: str) -> str:
    """The extension the other image folders use for ``name`` (``.png`` when none has it)."""
    return next((files[name].suffix for files in images.values() if name in files), ".png")


def read_2afc(root: Path | str) -> list[Triplet]:
    """All 2AFC triplets under ``root`` (a split folder of categories, or one category), sorted.

    Raises:
        PairingError: no 2AFC folders, a folder missing, a file without its partners (named), an unreadable
            or out-of-range judgment.
    """
    root = Path(root)
    out: list[Triplet] = []
    for folder in _category_folders(root, (*TWOAFC_DIRS, "judge"), "BAPPS 2AFC"):
        images, judged = _read_category(folder, TWOAFC_DIRS, "judge")
        for name in sorted(judged):
            out.append(Triplet(folder.name, name, images["ref"][name], images["p0"][name], images["p1"][name],
                               _judgment(judged[name], "judge")))
    return out


def read_jnd(root: Path | str) -> list[JndPair]:
    """All JND pairs under ``root`` (a split folder of categories, or one category), sorted.

    Raises:
        PairingError: as :func:`read_2afc`.
    """
    root = Path(root)
    out: list[JndPair] = []
    for folder in _category_folders(root, (*JND_DIRS, "same"), "BAPPS JND"):
        images, judged = _read_category(folder, JND_DIRS, "same")
        for name in sorted(judged):
            out.append(JndPair(folder.name, name, images["p0"][name], images["p1"][name],
                               _judgment(judged[name], "same")))
    return out


def read_mos_list(path: Path | str, *, ref_col: str = "ref", dist_col: str = "dist",
                  score_col: str = "mos") -> list[MosItem]:
    """The rows of a MOS/DMOS list, with paths resolved against the list's folder, in file order.

    Raises:
        UsageError: unreadable list, missing columns (the available ones are listed), a score that is not
            a finite number, an empty list.
        PairingError: image files that do not exist (named).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    columns, rows = read_rows(path)
    absent = [c for c in (ref_col, dist_col, score_col) if c not in columns]
    if absent:
        raise UsageError(f"{path}: no column(s) {', '.join(absent)} (columns: {', '.join(columns) or 'none'}); "
                         "choose them with --ref-col, --dist-col, --score-col")
    if not rows:
        raise UsageError(f"{path}: the list has no rows")
    base = path.parent
    items: list[MosItem] = []
    missing: list[str] = []
    for number, row in enumerate(rows, 1):
        raw = row[score_col]
        try:
            score = float(raw)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            raise UsageError(f"{path}: row {number}: {score_col} = {raw!r} is not a finite number")
        refs = []
        for col in (ref_col, dist_col):
            value = row[col]
            if value is None or str(value).strip() == "":
                raise UsageError(f"{path}: row {number}: empty {col}")
            file = Path(str(value))
            file = file if file.is_absolute() else base / file
            if not file.is_file():
                missing.append(str(file))
            refs.append(file)
        items.append(MosItem(str(number), refs[0], refs[1], score))
    if missing:
        unique = list(dict.fromkeys(missing))
        raise PairingError(f"{path}: {len(unique)} listed file(s) do not exist ({_names(unique)})")
    return items
