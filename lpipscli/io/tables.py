"""Lists of rows read from a table file (CSV/TSV, Parquet, JSON Lines): pair lists and MOS lists."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lpipscli.errors import UsageError

#: the table formats a list may be in, by extension
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson")


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """``(columns, rows)`` of a table file; CSV/TSV cells stay text, Parquet/JSON values keep their types.

    Raises:
        UsageError: an unknown extension, or content that is not of the format (naming the line).
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UsageError(f"{path}: cannot read it as Parquet: {str(exc).splitlines()[0]}") from None
        return table.column_names, table.to_pylist()
    if suffix in (".jsonl", ".ndjson"):
        columns, rows, _ = read_json_lines(path)
        return columns, rows
    if suffix in (".csv", ".tsv", ".txt"):
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    raise UsageError(f"{path}: unknown list format {suffix!r} (use .csv, .tsv, .parquet or .jsonl)")


def read_json_lines(path: Path) -> tuple[list[str], list[dict], list[int]]:
    """``(columns in first-seen order, one dict per non-blank line, their line numbers)`` of a JSON Lines file.

    Raises:
        UsageError: a line that is not a JSON object (naming it), or a file that cannot be read.
    """
    objects, where = [], []
    columns: dict[str, None] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}: line {number} is not JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise UsageError(f"{path}: line {number} is not a JSON object")
                columns.update(dict.fromkeys(obj))
                objects.append(obj)
                where.append(number)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read as JSON Lines: {exc}") from None
    return list(columns), objects, where
