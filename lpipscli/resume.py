"""`--resume`: find the rows an earlier run already wrote, and check it used the same settings."""

from __future__ import annotations

from pathlib import Path

from lpipscli.errors import UsageError
from lpipscli.sinks.parquet import journal_path


def previous_rows(path: str, fmt: str, settings_hash: str, columns: tuple[str, ...] | None = None, *,
                  settings: dict | None = None) -> list[dict]:
    """Rows already in ``path`` (for Parquet: its journal when a run was killed, else the file).

    The earlier run's settings record must equal this run's (compared with
    :func:`lpipscli.diff.settings_differences`, which names what changed).

    Raises:
        UsageError: writing to stdout, or the existing file was made with other settings or columns.
    """
    from lpipscli.diff import settings_differences
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
    table = read_results(source, source_fmt)
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
    if columns is not None:
        check_columns(path, table.rows, columns, table.columns)
    return table.rows


def check_columns(path: str, rows: list[dict], columns: tuple[str, ...], have: list[str] | None = None) -> None:
    """The earlier rows must have this run's columns."""
    have = list(have) if have is not None else (list(rows[0]) if rows else list(columns))
    if have != list(columns):
        raise UsageError(f"--resume: {path} has columns {','.join(have)}, this run writes "
                         f"{','.join(columns)}; use the same options or a new file")
