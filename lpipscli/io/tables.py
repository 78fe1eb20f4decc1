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
        rows, columns = [], {}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise UsageError(f"{path}:{number}: expected a JSON object per line")
                columns.update(dict.fromkeys(row))
                rows.append(row)
        return list(columns), rows
    if suffix in (".csv", ".tsv", ".txt"):
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    raise UsageError(f"{path}: unknown list format {suffix!r} (use .csv, .tsv, .parquet or .jsonl)")
