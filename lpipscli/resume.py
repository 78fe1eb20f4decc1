"""`--resume`: find the rows an earlier run already wrote, and check it used the same settings."""

from __future__ import annotations

from pathlib import Path

from lpipscli.errors import UsageError
from lpipscli.io.pairing import PairPlan, RefGroup
from lpipscli.sinks.parquet import journal_path


def previous_rows(path: str, fmt: str, settings_hash: str, columns: tuple[str, ...], *,
                  settings: dict | None = None, provenance: dict | None = None) -> list[dict]:
    """Rows already in ``path`` (for Parquet: its journal when a run was killed, else the file).

    ``settings`` (this run's settings record, dict form) or ``provenance`` (this run's provenance): when given,
    a refusal names the settings that differ (:func:`lpipscli.diff.settings_differences`, the comparison
    ``lpips diff`` uses).

    Raises:
        UsageError: writing to stdout, or the existing file was made with other settings or columns.
    """
    from lpipscli.results import read_results

    if path == "-":
        raise UsageError("--resume needs an output file (-o FILE), not stdout")
    target = Path(path)
    source = None
    if fmt == "parquet" and journal_path(target).is_file():
        source = journal_path(target)
    elif target.is_file() and target.stat().st_size > 0:
        source = target
    if source is None:
        return []
    source_fmt = fmt if source == target else "jsonl"  # the Parquet journal is JSON Lines
    if source_fmt != "parquet":
        from lpipscli.sinks.text import trim_partial_line

        trim_partial_line(source)  # a killed writer may have left half a line
    now = provenance if provenance is not None else (
        {"settings": settings, "settings_hash": settings_hash} if settings is not None else None)
    table = read_results(source, source_fmt)
    provenance = table.provenance
    if not provenance or "settings_hash" not in provenance:
        raise UsageError(f"--resume: {source} has no provenance (its .meta.json is missing), so it cannot be "
                         "checked against this run's settings; write to a new file")
    if provenance["settings_hash"] != settings_hash:
        from lpipscli.diff import settings_differences

        lines = settings_differences(provenance, now, labels=("the file", "this run")) if now is not None else []
        if lines:
            shown = "; ".join(lines[:4]) + (f"; ... ({len(lines) - 4} more)" if len(lines) > 4 else "")
        else:
            before = provenance.get("metrics", {})
            shown = (f"metrics {', '.join(before) or '?'}, settings hash {provenance['settings_hash'][:12]} vs "
                     f"{settings_hash[:12]} now")
        raise UsageError(f"--resume: {path} was made with different settings ({shown}); use the same options or a "
                         f"new file")
    if list(table.columns) != list(columns):
        raise UsageError(f"--resume: {path} has columns {','.join(table.columns)}, this run writes "
                         f"{','.join(columns)}; use the same options or a new file")
    return table.rows


def drop_done(pairing: PairPlan, rows: list[dict]) -> int:
    """Remove pairs that already have a row; returns how many were removed."""
    done = {(r["dist_root"], r["ref"], r["dist"]) for r in rows}
    removed = 0
    groups = []
    for group in pairing.groups:
        pairs = tuple(p for p in group.pairs if (p.dist_root, str(p.ref_path), str(p.dist_path)) not in done)
        removed += len(group.pairs) - len(pairs)
        if pairs:
            groups.append(RefGroup(group.key, group.ref_path, pairs))
    pairing.groups = groups
    return removed
