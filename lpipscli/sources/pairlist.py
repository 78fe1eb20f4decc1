"""A pair list: a table of ``ref,dist[,group]`` rows (CSV/TSV, Parquet or JSON Lines).

For outputs that do not mirror the reference tree (ML samples, crops, renamed encodes). Relative paths
resolve against the list file's folder. ``group`` (optional) becomes the rows' ``dist_root``, so that
statistics and gates work per group; without it every row's group is the list file itself. A reference
named by several rows is decoded once and its features computed once.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lpipscli.errors import PairingError, UsageError
from lpipscli.io.pairing import Pair, PairPlan, RefGroup
from lpipscli.sources.base import PlanContext, SourcePlan
from lpipscli.sources.folders import plan_groups

REQUIRED = ("ref", "dist")
OPTIONAL = ("group",)
_SHOW = 3


def _names(items: list[str]) -> str:
    return ", ".join(items[:_SHOW]) + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def read_pair_table(path: Path) -> list[dict[str, str]]:
    """The rows of a pair list as dicts of strings, checked for the required columns.

    Raises:
        PairingError: unknown extension, unreadable file, missing or unknown columns, empty cells, no rows.
    """
    from lpipscli.io.tables import read_rows

    if not path.is_file():
        raise PairingError(f"--pairs {path}: no such file")
    try:
        columns, rows = read_rows(path)
    except UsageError as exc:
        raise PairingError(f"--pairs {exc}") from None
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in (*REQUIRED, *OPTIONAL)]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise PairingError(f"--pairs {path}: {'; '.join(parts)} (columns: ref, dist and optionally group)")
    if not rows:
        raise PairingError(f"--pairs {path}: no rows")
    empty = [str(i + 2) for i, r in enumerate(rows) if not r.get("ref") or not r.get("dist")]
    if empty:
        raise PairingError(f"--pairs {path}: empty ref or dist on line(s) {_names(empty)}")
    return [{k: (None if v is None else str(v)) for k, v in r.items()} for r in rows]


def _resolve(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _key(base: Path, path: Path) -> str:
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        rel = Path(path.name)
    return str(PurePosixPath(*rel.parts).with_suffix(""))


def pair_list(path: Path) -> PairPlan:
    """Read a pair list into reference groups (in first-appearance order); nothing is decoded.

    Raises:
        PairingError: see :func:`read_pair_table`, plus missing files (all listed) and duplicate pairs.
    """
    base = path.parent
    rows = read_pair_table(path)
    default_group = str(path)
    missing: list[str] = []
    seen: dict[tuple[str, str, str], int] = {}
    duplicates: list[str] = []
    groups: dict[str, list[Pair]] = {}
    ref_paths: dict[str, Path] = {}
    keys: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows, start=2):
        ref, dist = _resolve(base, row["ref"]), _resolve(base, row["dist"])
        group = row.get("group") or default_group
        for p in (ref, dist):
            if not p.is_file() and str(p) not in missing:
                missing.append(str(p))
        ident = (str(ref.resolve()), str(dist.resolve()), group)
        if ident in seen:
            duplicates.append(f"line {line} repeats line {seen[ident]} ({row['ref']} vs {row['dist']})")
            continue
        seen[ident] = line
        key = _key(base, dist)
        n = keys.get((group, key), 0)
        keys[(group, key)] = n + 1
        if n:
            key = f"{key}~{n + 1}"
        ref_id = str(ref.resolve())
        ref_paths.setdefault(ref_id, ref)
        groups.setdefault(ref_id, []).append(Pair(key, ref, dist, group))
    problems = []
    if missing:
        problems.append(f"{len(missing)} file(s) do not exist ({_names(missing)})")
    if duplicates:
        problems.append(f"{len(duplicates)} duplicate pair(s): {_names(duplicates)}")
    if problems:
        raise PairingError(f"--pairs {path}: " + "; ".join(problems) + "; nothing was computed")
    plan = PairPlan(groups=[RefGroup(_key(base, ref_paths[r]), ref_paths[r], tuple(p)) for r, p in groups.items()])
    return plan


class PairListSource:
    """``lpips compare --pairs LIST``."""

    kind = "pairlist"

    def __init__(self, config):
        self.config = config

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        pairing = pair_list(self.config.pairs)
        groups = list(dict.fromkeys(p.dist_root for g in pairing.groups for p in g.pairs))
        return plan_groups(pairing, ctx, {"pairs": str(self.config.pairs), "groups": groups}, done=done)
