"""`lpips merge`: the shards of a run (``--shard I/N``, torchrun ranks) checked and joined into one result.

Checks, each a one-line error naming the files:

- every piece carries provenance, and all settings records agree (:func:`lpipscli.diff.settings_differences`);
- all pieces say the same shard count ``N``; every shard ``0 .. N-1`` is there (a missing one is named,
  with its interrupted journal when one is found); none is there twice;
- each shard finished, and holds as many rows as its plan had (its provenance records them), and the
  shards' plans add up to the run's (``pairs_total``): no work item is missing;
- no row (``dist_root, ref, dist, frame``) appears twice.

The merged rows are in a canonical order: by reference, frame, distorted input (in the order the run was
given them) and distorted file. A single run writes the same rows, in the order it scored them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lpipscli.errors import UsageError
from lpipscli.results import READ_FORMATS, ResultTable

_SHOW = 3


@dataclass
class Piece:
    """One file of a run: a whole shard (a file) or one distorted input of a shard (a dataset file)."""

    path: Path
    table: ResultTable
    #: the dataset partition it belongs to (None: a whole shard file)
    dist_root: str | None = None

    @property
    def shard(self) -> dict:
        return (self.table.provenance or {}).get("shard") or {"index": 0, "count": 1}

    @property
    def index(self) -> int:
        return int(self.shard["index"])

    @property
    def count(self) -> int:
        return int(self.shard["count"])


def _names(items) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:_SHOW]) + (f" ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def read_inputs(paths: list[Path]) -> list[Piece]:
    """Read shard files and folders (a dataset folder, or a folder of shard files) into pieces.

    Raises:
        UsageError: a path that does not exist, a folder without result files, an unreadable file.
    """
    from lpipscli.sinks.dataset import dist_root_of, pieces, read_piece

    out: list[Piece] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            found = pieces(path)
            files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith((".", "_"))
                     and p.suffix.lower() in READ_FORMATS and p not in found]
            if not found and not files:
                raise UsageError(f"{path}: no result files in this folder (shard files, or a dataset written with "
                                 "-o FOLDER/)")
            out.extend(Piece(p, read_piece(p), dist_root_of(p)) for p in found)
            out.extend(_whole(p) for p in files)
        else:
            out.append(_whole(path))
    return out


def _whole(path: Path) -> Piece:
    from lpipscli.results import read_results

    return Piece(path, read_results(path))


def _journals(pieces: list[Piece], index: int, count: int) -> list[Path]:
    """Journals an interrupted run of shard ``index`` left next to the pieces that are there."""
    from lpipscli.sinks.dataset import shard_label

    label = shard_label({"index": index, "count": count})
    folders = {p.path.parent for p in pieces} | {p.path.parent.parent for p in pieces if p.dist_root is not None}
    found = []
    for folder in sorted(folders):
        found.extend(sorted(folder.glob(f".*{label}*.journal.jsonl")))
        found.extend(sorted(folder.glob(f"*/.*{label}*.journal.jsonl")))
    return found


def check(pieces: list[Piece]) -> list[str]:
    """The checks of the module docstring (rows are checked by :func:`combine`); returns warnings.

    A finished video shard with fewer rows than planned is a warning, not an error: a reference stream
    that ends before its container's frame count stops a single run early too (it warns the same way).

    Raises:
        UsageError: the first check that fails.
    """
    from lpipscli.diff import settings_differences

    if not pieces:
        raise UsageError("merge: nothing to merge")
    for p in pieces:
        if not isinstance(p.table.provenance, dict) or "settings" not in p.table.provenance:
            raise UsageError(f"{p.path}: no provenance with a settings record, so it cannot be checked against the "
                             "other shards (written by lpips compare?)")
    first = pieces[0]
    for p in pieces[1:]:
        if p.table.provenance.get("settings_hash") != first.table.provenance.get("settings_hash"):
            changed = settings_differences(first.table.provenance, p.table.provenance,
                                           labels=(first.path.name, p.path.name))
            what = "; ".join(changed[:4]) + (f" (and {len(changed) - 4} more)" if len(changed) > 4 else "")
            raise UsageError(f"{p.path} was made with other settings than {first.path} ({what or 'settings hash'}); "
                             "the shards of one run must use the same options")
        if p.table.columns != first.table.columns:
            raise UsageError(f"{p.path} has columns {','.join(p.table.columns)}, {first.path} has "
                             f"{','.join(first.table.columns)}")
    counts = {p.count for p in pieces}
    if len(counts) > 1:
        by = {}
        for p in pieces:
            by.setdefault(p.count, p)
        raise UsageError("merge: the files come from runs split differently: " + ", ".join(
            f"{p.path} is shard {p.index}/{p.count}" for p in by.values()))
    (count,) = counts
    seen: dict[tuple[int, str | None], Piece] = {}
    for p in pieces:
        clash = [seen[k] for k in seen
                 if k[0] == p.index and (k[1] is None or p.dist_root is None or k[1] == p.dist_root)]
        if clash:
            raise UsageError(f"merge: shard {p.index}/{count} appears twice: {clash[0].path} and {p.path}")
        seen[(p.index, p.dist_root)] = p
    missing = sorted(set(range(count)) - {p.index for p in pieces})
    if missing:
        notes = []
        for index in missing:
            journals = _journals(pieces, index, count)
            notes.append(f"{index}/{count}" + (f" (interrupted: {journals[0]}; rerun it with --shard {index}/{count} "
                                               "--resume)" if journals else ""))
        raise UsageError(f"merge: shard(s) {_names(notes)} missing; found {len({p.index for p in pieces})} of "
                         f"{count} shard(s) in {_names(sorted({str(p.path) for p in pieces}))}")
    totals = {p.shard.get("pairs_total") for p in pieces}
    rows_per_shard: dict[int, int] = {}
    for p in pieces:
        if p.table.complete is False:
            raise UsageError(f"{p.path}: shard {p.index}/{count} did not finish (interrupted or stopped at an "
                             f"error); rerun it with --shard {p.index}/{count} --resume")
        rows_per_shard[p.index] = rows_per_shard.get(p.index, 0) + len(p.table.rows)
    if len(totals) > 1:
        raise UsageError(f"merge: the shards planned different runs ({_names(sorted(map(str, totals)))} pairs in "
                         "all): were the inputs changed between them?")
    planned = {p.index: p.shard.get("pairs") for p in pieces}
    warnings = []
    video = first.table.provenance.get("video") is not None
    for index, n in sorted(rows_per_shard.items()):
        if planned[index] is not None and n != planned[index]:
            where = _names(sorted({str(p.path) for p in pieces if p.index == index}))
            if video and n < planned[index]:
                warnings.append(f"shard {index}/{count} ({where}) holds {n} row(s), its plan had {planned[index]}: "
                                "a video that ends before its container's frame count?")
                continue
            raise UsageError(f"merge: shard {index}/{count} ({where}) holds {n} row(s), its plan had {planned[index]}: "
                             f"rerun it with --shard {index}/{count} --resume")
    (total,) = totals
    if total is not None and count > 1 and sum(v for v in planned.values() if v is not None) != total:
        raise UsageError(f"merge: the shards planned {sum(planned.values())} pair(s), the run has {total}")
    return warnings


def combine(pieces: list[Piece], *, source: str = "merged") -> ResultTable:
    """Check the pieces (:func:`check`) and join their rows into one table in the canonical order.

    Raises:
        UsageError: a check fails, or a row appears twice.
    """
    from lpipscli.sources.base import row_key

    notes = check(pieces)
    first = pieces[0].table
    where: dict[tuple, Path] = {}
    rows: list[dict] = []
    for p in pieces:
        for row in p.table.rows:
            key = row_key(row)
            if key in where:
                raise UsageError(f"merge: {key[2]}" + (f"#{key[3]}" if key[3] >= 0 else "")
                                 + f" (dist_root {key[0]}) appears twice: in {where[key]} and {p.path}")
            where[key] = p.path
            rows.append(row)
    provenance = {k: v for k, v in first.provenance.items() if k not in ("shard", "dataset")}
    inputs = provenance.get("inputs") or {}
    roots = [str(r) for r in inputs.get("dists") or inputs.get("groups") or []]
    order = {r: i for i, r in enumerate(roots)}
    rows.sort(key=lambda r: (str(r["ref"]), _frame(r), order.get(str(r["dist_root"]), len(order)),
                             str(r["dist_root"]), str(r["dist"])))
    provenance["merged"] = {"shards": pieces[0].count, "files": sorted({str(p.path) for p in pieces})}
    warnings = list(dict.fromkeys([w for p in pieces for w in p.table.warnings] + notes))
    return ResultTable(columns=list(first.columns), rows=rows, provenance=provenance, path=source,
                       kinds=dict(first.kinds), complete=True, warnings=warnings)


def _frame(row: dict) -> int:
    frame = row.get("frame")
    return -1 if frame is None or (isinstance(frame, float) and math.isnan(frame)) else int(frame)


def merge_results(output: str | None, inputs: list[Path], fmt: str | None, reports, *, quiet: bool = False,
                  console=None) -> int:
    """`lpips merge`: check and join shards, write ``output`` (``None``: write nothing), then summarise and
    gate exactly as a single `compare` run does; returns the exit code.

    Raises:
        UsageError: see :func:`combine`; unwritable outputs (checked before reading).
    """
    import sys

    from rich.console import Console

    from lpipscli.ci import check_output_path
    from lpipscli.engine import RunResult
    from lpipscli.gates import parse_gates
    from lpipscli.run import conclude
    from lpipscli.sinks import check_writable, format_for, open_sink
    from lpipscli.sinks.dataset import check_dataset_root
    from lpipscli.summary import build_summary, print_summary

    console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    if output is not None:
        fmt = format_for(output, fmt)
        check_dataset_root(output) if fmt == "dataset" else check_writable(output)
    check_output_path(reports.summary_json, "--summary-json")
    check_output_path(reports.junit, "--junit")
    table = combine(read_inputs(inputs), source=output or "merged")
    provenance = table.provenance
    metrics = tuple(provenance.get("metrics") or {})
    gates = parse_gates(reports.fail_if, metrics)
    for warning in table.warnings:
        console.print(f"[yellow]lpips: warning:[/] {_escape(warning)}", highlight=False, soft_wrap=True)
    inputs_record = provenance.get("inputs") or {}
    roots = list(dict.fromkeys([str(r) for r in inputs_record.get("dists") or inputs_record.get("groups") or []]
                               + table.dist_roots))
    result = RunResult(n_pairs=len(table.rows))
    result.record(table.rows, metrics)
    summary = build_summary(result, metrics, roots, provenance.get("pairing"), reports.worst)
    if output is not None:
        sink = open_sink(output, fmt, tuple(table.columns), provenance)
        sink.write(table.rows)
        sink.close(summary, complete=True)
    if not quiet:
        print_summary(summary, console)
    return conclude(result, summary, provenance, metrics=metrics, roots=roots, gates=gates, reports=reports,
                    console=console, quiet=quiet, output=None if output is None else str(output))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
