"""Read result files written by the sinks (CSV, Parquet, JSON Lines) back into typed rows.

Used by ``lpips summary`` (re-summarise and re-gate a file) and ``lpips diff`` (join two files).

Typing rules (the inverse of :mod:`lpipscli.sinks`):

- string columns (``ref``, ``dist``, ``dist_root``, ``status``, ``error``, ``resized_from``, ``key``, and
  ``*_map``: heat-map file names) stay strings;
- ``width``, ``height``, ``frame`` are ``int`` (``None`` when a cell is empty);
- every other column (the metrics, and ``time`` of video rows) is ``float``: an empty CSV cell, a JSON
  ``null`` or a Parquet null is ``NaN`` (no value: the pair failed); ``inf`` / ``-inf`` / ``nan`` text (CSV)
  or strings (JSONL) are the floats they name. In CSV and JSONL files without provenance, a column that is
  not all numbers stays a string column.

Provenance comes from the Parquet schema metadata, or from the ``FILE.meta.json`` sidecar of CSV/JSONL files;
without it ``provenance`` is ``None``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.status import Group, gate_inputs, group_rows

__all__ = [
    "FIXED_COLUMNS",
    "FLOAT_COLUMNS",
    "INT_COLUMNS",
    "READ_FORMATS",
    "STR_COLUMNS",
    "ResultTable",
    "format_of",
    "groups_for_gates",
    "is_fixed_column",
    "is_str_column",
    "metric_columns",
    "read_results",
    "row_name",
    "summarize_groups",
    "table_groups",
]

#: Columns that hold text.
STR_COLUMNS = frozenset({"ref", "dist", "dist_root", "status", "error", "resized_from", "key"})
#: Columns that hold integers.
INT_COLUMNS = frozenset({"width", "height", "frame", "dist_frame"})
#: Float columns that are not metrics.
FLOAT_COLUMNS = frozenset({"time"})
#: Every column that is not a metric.
FIXED_COLUMNS = STR_COLUMNS | INT_COLUMNS | FLOAT_COLUMNS

#: File name endings and the formats they mean.
READ_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet", ".jsonl": "jsonl",
                ".ndjson": "jsonl"}

def is_str_column(name: str) -> bool:
    """Whether a column holds text (:data:`STR_COLUMNS` and the ``*_map`` heat-map file columns)."""
    return name in STR_COLUMNS or name.endswith("_map")


def is_fixed_column(name: str) -> bool:
    """Whether a column is not a metric."""
    return name in FIXED_COLUMNS or name.endswith("_map")


_NONFINITE = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}


@dataclass
class ResultTable:
    """The rows of one result file, typed back.

    Attributes:
        columns: column names in file order.
        rows: one dict per row, a key per column.
        provenance: the run's provenance (``Engine.provenance()``), or ``None`` when the file has none.
        path: the file read.
        kinds: ``{column: "str" | "int" | "float"}``.
        complete: whether the run that wrote the file finished (the CSV/JSONL sidecar's ``complete`` flag,
            the Parquet footer's ``lpipscli_complete``); ``None`` when the file does not say.
        warnings: things a reader should be told (no provenance, incomplete run, unreadable sidecar).
        run: the run's end record when it wrote one (``pairs`` planned, ``scored``, ``failed``,
            ``interrupted``, ``first_error``); ``None`` when the writer was killed or the file has none.
    """

    columns: list[str]
    rows: list[dict]
    provenance: dict | None
    path: str
    kinds: dict[str, str] = field(default_factory=dict)
    complete: bool | None = None
    warnings: list[str] = field(default_factory=list)
    run: dict | None = None

    @property
    def expected_rows(self) -> int | None:
        """How many rows the run planned (its end record's ``pairs``), or ``None`` when not recorded."""
        pairs = (self.run or {}).get("pairs")
        return pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None

    @property
    def missing_rows(self) -> int | None:
        """Planned rows that are not in the file (``None`` when the plan is not recorded)."""
        expected = self.expected_rows
        return None if expected is None else max(0, expected - len(self.rows))

    def incomplete_text(self) -> str:
        """Why the run did not finish and how many items are missing, in one line (``""`` when complete)."""
        if self.complete is not False:
            return ""
        run = self.run or {}
        if run.get("interrupted"):
            why = "it was interrupted"
        elif run.get("first_error"):
            why = f"it stopped at an error ({run['first_error']})"
        elif self.run is None:
            why = "its writer was killed or crashed (no end record)"
        else:
            why = "it stopped early"
        missing = self.missing_rows
        if missing is None:
            count = f"{len(self.rows)} rows written, the number planned is not recorded"
        else:
            count = f"{missing} of {self.expected_rows} planned items missing"
        return f"the run that wrote it did not finish: {why}; {count}"

    def values(self, column: str) -> np.ndarray:
        """The column as a float64 array (NaN where there is no value)."""
        if column not in self.columns:
            raise UsageError(f"{self.path}: no column {column!r} (columns: {', '.join(self.columns)})")
        return np.asarray([math.nan if r[column] is None else r[column] for r in self.rows], dtype=np.float64)

    @property
    def dist_roots(self) -> list[str]:
        """The ``dist_root`` values in order of first appearance (``[""]`` when the column is absent)."""
        if "dist_root" not in self.columns:
            return [""] if self.rows else []
        return list(dict.fromkeys(r["dist_root"] for r in self.rows))


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """``csv``, ``parquet`` or ``jsonl``: ``fmt`` when given, else from the file name's ending.

    Raises:
        UsageError: an unknown format or ending.
    """
    if fmt:
        if fmt not in ("csv", "parquet", "jsonl"):
            raise UsageError(f"--format {fmt!r}: choose one of csv, parquet, jsonl")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in READ_FORMATS:
        raise UsageError(f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
                         f"result files end in .csv, .parquet or .jsonl")
    return READ_FORMATS[suffix]


def read_results(path: str | Path, fmt: str | None = None) -> ResultTable:
    """Reads a result file written by ``lpips compare`` (or ``lpips diff``).

    Args:
        path: a ``.csv``, ``.parquet`` or ``.jsonl`` file.
        fmt: the format, overriding the extension.

    Returns:
        The :class:`ResultTable`, values typed as the module docstring says.

    Raises:
        UsageError: unknown format, missing or unreadable file, malformed content (one line, naming the
            file and, where it applies, the line and column).
    """
    path = Path(path)
    if path.is_dir():  # a Parquet dataset folder (``-o results/``), checked like `lpips merge` checks shards
        from lpipscli.sinks.dataset import read_dataset

        return read_dataset(path)
    fmt = format_of(path, fmt)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if fmt == "parquet":
        return _read_parquet(path)
    provenance, complete, warnings, run = _read_sidecar(path)
    metrics = set((provenance or {}).get("metrics") or {}) if isinstance(provenance, dict) else set()
    if fmt == "csv":
        columns, raw, where = _read_csv(path)
    else:
        columns, raw, where = _read_jsonl(path)
    kinds, rows = _type_rows(path, columns, raw, where, metrics)
    table = ResultTable(columns=columns, rows=rows, provenance=provenance, path=str(path), kinds=kinds,
                        complete=complete, warnings=warnings, run=run)
    if complete is False:
        table.warnings.append(f"{path}: {table.incomplete_text()}")
    return table


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _read_sidecar(path: Path) -> tuple[dict | None, bool | None, list[str], dict | None]:
    meta_path = _sidecar_path(path)
    if not meta_path.is_file():
        return None, None, [f"{path}: no provenance ({meta_path.name} not found)"], None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, None, [f"{meta_path}: unreadable, provenance ignored ({type(exc).__name__}: {exc})"], None
    if not isinstance(meta, dict) or not isinstance(meta.get("provenance"), dict):
        return None, None, [f"{meta_path}: holds no provenance"], None
    complete = meta.get("complete")
    summary = meta.get("summary")
    run = None
    if isinstance(summary, dict):
        from lpipscli.sinks.parquet import RUN_FIELDS

        run = {k: summary[k] for k in RUN_FIELDS if k in summary}
    return meta["provenance"], complete if isinstance(complete, bool) else None, [], run


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]], list[int]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UsageError(f"{path}: empty file (no CSV header)")
            raw, where = [], []
            for record in reader:
                if not record:
                    continue
                if len(record) != len(header):
                    raise UsageError(f"{path}: line {reader.line_num} has {len(record)} fields, "
                                     f"the header has {len(header)}")
                raw.append(record)
                where.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot read as CSV: {exc}") from None
    _check_header(path, header)
    return header, raw, where


def _read_jsonl(path: Path) -> tuple[list[str], list[list[Any]], list[int]]:
    from lpipscli.io.tables import read_json_lines

    header, objects, where = read_json_lines(path)
    return header, [[obj.get(c) for c in header] for obj in objects], where


def _check_header(path: Path, header: list[str]) -> None:
    seen = set()
    for c in header:
        if c in seen:
            raise UsageError(f"{path}: column {c!r} appears twice in the header")
        seen.add(c)


def _to_float(value: Any) -> float:
    """A cell as a float; ValueError when it is not a number."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _NONFINITE:
            return _NONFINITE[text]
        return float(text)
    raise ValueError(value)


def _to_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(value)
    return int(str(value).strip())


def _to_str(value: Any) -> str:
    return "" if value is None else str(value)


def _type_rows(path: Path, columns: list[str], raw: list[list[Any]], where: list[int],
               metrics: set[str]) -> tuple[dict[str, str], list[dict]]:
    typed: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    for j, c in enumerate(columns):
        cells = [r[j] for r in raw]
        if is_str_column(c):
            typed[c], kinds[c] = [_to_str(v) for v in cells], "str"
            continue
        convert = _to_int if c in INT_COLUMNS else _to_float
        out = []
        bad = None
        for i, v in enumerate(cells):
            try:
                out.append(convert(v))
            except (ValueError, TypeError):
                bad = i
                break
        if bad is None:
            typed[c], kinds[c] = out, ("int" if c in INT_COLUMNS else "float")
        elif c in INT_COLUMNS or c in FLOAT_COLUMNS or c in metrics:
            what = "an integer" if c in INT_COLUMNS else "a number"
            raise UsageError(f"{path}: line {where[bad]}, column {c!r}: {cells[bad]!r} is not {what}")
        else:  # a column we do not know that does not hold numbers: keep the text
            typed[c], kinds[c] = [_to_str(v) for v in cells], "str"
    rows = [{c: typed[c][i] for c in columns} for i in range(len(raw))]
    return kinds, rows


def _read_parquet(path: Path) -> ResultTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lpipscli.sinks.parquet import COMPLETE_KEY, METADATA_KEY, RUN_KEY

    try:
        table = pq.read_table(path)
        footer = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"{path}: cannot read as Parquet: {exc}") from None
    meta = table.schema.metadata or {}
    provenance, warnings = None, []
    complete = {b"true": True, b"false": False}.get(footer.get(COMPLETE_KEY))
    run = None
    if RUN_KEY in footer:
        try:
            run = json.loads(footer[RUN_KEY])
        except (UnicodeDecodeError, json.JSONDecodeError):
            run = None
    if METADATA_KEY in meta:
        try:
            provenance = json.loads(meta[METADATA_KEY])
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"{path}: unreadable provenance ignored ({exc})")
    else:
        warnings.append(f"{path}: no lpipscli provenance in its metadata")
    metrics = set(provenance.get("metrics") or {}) if isinstance(provenance, dict) else set()
    columns = list(table.column_names)
    _check_header(path, columns)
    typed: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    for c in columns:
        col = table.column(c)
        values = col.to_pylist()
        t = col.type
        if is_str_column(c) or pa.types.is_string(t) or pa.types.is_large_string(t):
            if c in INT_COLUMNS or c in FLOAT_COLUMNS or c in metrics:
                # written by something else: fall back to the text rules
                _, rows = _type_rows(path, [c], [[v] for v in values], list(range(1, len(values) + 1)), metrics)
                values = [r[c] for r in rows]
                kinds[c] = "int" if c in INT_COLUMNS else "float"
            else:
                values, kinds[c] = [_to_str(v) for v in values], "str"
        elif c in INT_COLUMNS:
            try:
                values, kinds[c] = [_to_int(v) for v in values], "int"
            except (ValueError, TypeError):
                raise UsageError(f"{path}: column {c!r} does not hold integers") from None
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
            values, kinds[c] = [math.nan if v is None else float(v) for v in values], "float"
        else:
            raise UsageError(f"{path}: column {c!r} has type {t}, not a result column type")
        typed[c] = values
    rows = [{c: typed[c][i] for c in columns} for i in range(table.num_rows)]
    result = ResultTable(columns=columns, rows=rows, provenance=provenance, path=str(path), kinds=kinds,
                         complete=complete, warnings=warnings, run=run if isinstance(run, dict) else None)
    if complete is False:
        result.warnings.append(f"{path}: {result.incomplete_text()}")
    return result


def _derived_names(metric: str) -> tuple[str, ...]:
    return (metric, f"delta_{metric}", f"{metric}_base", f"{metric}_new")


def metric_columns(table: ResultTable, known_keys: Iterable[str] | None = None) -> list[str]:
    """The metric columns of ``table``, in file order.

    With provenance, the columns named in its ``"metrics"`` (for a diff file also their ``delta_<m>``,
    ``<m>_base``, ``<m>_new`` columns); without it, the float columns that are not fixed
    (:func:`is_fixed_column`).

    Args:
        table: a table from :func:`read_results`.
        known_keys: the metric keys this version knows (e.g. ``REGISTRY``); only checked: a column with a
            known metric's name that does not hold numbers is an error.

    Raises:
        UsageError: a known metric's column holds text.
    """
    for c in known_keys or ():
        if c in table.columns and table.kinds.get(c) == "str":
            raise UsageError(f"{table.path}: column {c!r} should hold numbers (it is a metric)")
    prov = table.provenance if isinstance(table.provenance, dict) else {}
    named = prov.get("metrics")
    if isinstance(named, dict) and named:
        allowed = {name for m in named for name in _derived_names(m)}
        return [c for c in table.columns if c in allowed and table.kinds.get(c) == "float"]
    return [c for c in table.columns if not is_fixed_column(c) and table.kinds.get(c) == "float"]


def row_name(row: Mapping[str, Any]) -> str:
    """How a row is named in messages: its distorted file (else its reference), ``#frame`` for video."""
    name = row.get("dist") or row.get("ref") or ""
    frame = row.get("frame")
    return f"{name}#{frame}" if frame is not None and frame != "" else str(name)


def metric_of(table: ResultTable):
    """A function mapping a value column to its metric: ``delta_psnr``, ``psnr_base``, ``psnr_new`` -> ``psnr``
    (for diff files); any other column is its own metric."""
    prov = table.provenance if isinstance(table.provenance, dict) else {}
    named = prov.get("metrics") if isinstance(prov.get("metrics"), dict) else {}

    def of(column: str) -> str:
        for m in named:
            if column in _derived_names(m):
                return m
        return column
    return of


def table_groups(table: ResultTable, columns: Iterable[str]) -> dict[str, Group]:
    """The rows of ``table`` grouped per ``dist_root`` (:func:`lpipscli.status.group_rows`).

    Raises:
        UsageError: a column that the table does not have.
    """
    columns = list(columns)
    missing = [m for m in columns if m not in table.columns]
    if missing:
        raise UsageError(f"{table.path}: no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(table.columns)})")
    diff = isinstance(table.provenance, dict) and table.provenance.get("kind") == "diff"
    name_of = _diff_row_name if diff else row_name
    return group_rows(table.rows, columns, metric_of=metric_of(table), name_of=name_of)


def _diff_row_name(row: Mapping[str, Any]) -> str:
    frame = row.get("frame")
    return f"{row.get('ref', '')}#{frame}" if frame is not None and frame != "" else str(row.get("ref", ""))


def groups_for_gates(
    table: ResultTable, metrics: Iterable[str]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], dict[str, list[str]]]:
    """The rows of ``table`` in the shape :func:`lpipscli.gates.evaluate_gates` takes.

    Args:
        table: a table from :func:`read_results`.
        metrics: the metric columns to include (e.g. :func:`metric_columns`).

    Returns:
        ``(groups, failed, keys)``: ``groups = {dist_root: {metric: float64 array}}`` with one value per
        row (NaN for failed pairs), in order of first appearance; ``failed = {dist_root: rows whose status is
        a failure}`` (:func:`lpipscli.status.is_failure`: ``failed``, ``partial``, ``missing_in_new``, the
        older ``error``); ``keys = {dist_root: [row names]}`` aligned with the arrays (:func:`row_name`).

    Raises:
        UsageError: a metric that is not a column of the table.
    """
    return gate_inputs(table_groups(table, metrics))


def summarize_groups(
    groups: Mapping[str, Any],
    failed: Mapping[str, int] | None = None,
    direction: Mapping[str, bool | None] | None = None,
) -> dict[str, Any]:
    """The ``per_dist_root`` block of a summary (:func:`lpipscli.summary.per_root`), for
    ``{dist_root: Group}`` or ``{dist_root: {column: values}}`` with ``failed`` counts."""
    from lpipscli.summary import per_root_summary

    return per_root_summary(groups, failed or {}, {}, direction, 0)
