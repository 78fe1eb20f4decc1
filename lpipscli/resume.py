"""`--resume`: find the rows an earlier run already wrote, and check it used the same settings."""

from __future__ import annotations

from pathlib import Path

from lpipscli.errors import UsageError
from lpipscli.sinks.parquet import journal_path


def previous_rows(path: str, fmt: str, settings_hash: str, columns: tuple[str, ...] | None = None, *,
                  settings: dict | None = None, shard: dict | None = None) -> list[dict]:
    """Rows already in ``path`` (for Parquet: its journal when a run was killed, else the file).

    The earlier run's settings record must equal this run's (compared with
    :func:`lpipscli.diff.settings_differences`, which names what changed). For a dataset folder
    (``fmt="dataset"``), the rows of this ``shard`` (its ``{"index", "count"}``; ``None``: an unsharded run).

    Raises:
        UsageError: writing to stdout, or the existing file was made with other settings or columns.
    """
    from lpipscli.diff import settings_differences

    if path == "-":
        raise UsageError("--resume needs an output file (-o FILE), not stdout")
    target = Path(path)
    table = _dataset_table(target, shard) if fmt == "dataset" else _file_table(target, fmt)
    if table is None:
        return []
    source = table.path
    provenance = table.provenance
    if not provenance or "settings_hash" not in provenance:
        raise UsageError(f"--resume: {source} has no provenance (its .meta.json is missing), so it cannot be "
                         "checked against this run's settings; write to a new file")
    if provenance["settings_hash"] != settings_hash:
        changed = settings_differences(provenance, {"settings": settings, "settings_hash": settings_hash},
                                       labels=("the file", "this run")) if settings is not None else []
        what = ("; ".join(changed[:4]) + (f" (and {len(changed) - 4} more)" if len(changed) > 4 else "")) if changed \
            else f"metrics {', '.join(provenance.get('metrics', {})) or '?'}"
        raise UsageError(
            f"--resume: {path} was made with different settings ({what}; settings hash "
            f"{provenance['settings_hash'][:12]} vs {settings_hash[:12]} now); use the same options or a new file"
        )
    earlier = provenance.get("shard") or {}
    if fmt != "dataset" and (earlier.get("index"), earlier.get("count")) != ((shard or {}).get("index"),
                                                                           (shard or {}).get("count")):
        what = f"shard {earlier['index']}/{earlier['count']}" if earlier else "no --shard"
        raise UsageError(f"--resume: {path} was written with {what}; resume it with the same --shard")
    if columns is not None:
        check_columns(path, table.rows, columns, table.columns)
    return table.rows


def _file_table(target: Path, fmt: str):
    """The rows of an output file (its journal for an interrupted Parquet run); None when there are none."""
    from lpipscli.results import read_results

    source = None
    if fmt == "parquet" and journal_path(target).is_file():
        source = journal_path(target)
    elif target.is_file() and target.stat().st_size > 0:
        source = target
    if source is None:
        return None
    source_fmt = fmt if source == target else "jsonl"  # the Parquet journal is JSON Lines
    if source_fmt != "parquet":
        from lpipscli.sinks.text import trim_partial_line

        trim_partial_line(source)  # a killed writer may have left half a line
    return read_results(source, source_fmt)


def _dataset_table(root: Path, shard: dict | None):
    from lpipscli.sinks.dataset import resume_table

    return resume_table(root, shard)


def check_columns(path: str, rows: list[dict], columns: tuple[str, ...], have: list[str] | None = None) -> None:
    """The earlier rows must have this run's columns."""
    have = list(have) if have is not None else (list(rows[0]) if rows else list(columns))
    if have != list(columns):
        raise UsageError(f"--resume: {path} has columns {','.join(have)}, this run writes "
                         f"{','.join(columns)}; use the same options or a new file")
