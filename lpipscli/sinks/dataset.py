"""Parquet dataset output (``-o results/``): one file per shard and distorted input, hive-partitioned.

Layout (the Hive convention that pyarrow.dataset, DuckDB, pandas, Polars and Spark read directly)::

    results/
      dist_root=<percent-encoded dist_root>/part-<I>-of-<N>.parquet

- The partition value is the row's ``dist_root`` percent-encoded (``urllib.parse.quote(safe="")``, so
  ``/data/enc/x264`` is ``%2Fdata%2Fenc%2Fx264``); readers decode it back. As in every Hive dataset the
  partition column is not stored inside the files: readers add it from the folder name.
- ``I/N`` is the shard (``00000-of-00001`` for a run without ``--shard``). Each shard writes only its own
  files, so the shards of a run (a job array, torchrun ranks) write into one folder concurrently.
- Every file carries the run's provenance (its settings record, its shard) in the Parquet metadata, plus
  ``provenance["dataset"]``: the full column order and the partitioning, so that
  :func:`read_dataset` gives back the same rows a single file would hold.
- Each file is written like any Parquet output: under a temporary name, renamed when done, with a
  journal for ``--resume`` (hidden names starting with ``.``, which dataset readers skip).

Readers::

    pyarrow.dataset.dataset("results/", format="parquet", partitioning="hive")
    duckdb: SELECT * FROM read_parquet('results/**/*.parquet', hive_partitioning = true)
    pandas.read_parquet("results/")
    spark.read.parquet("results/")
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote

from lpipscli.errors import OutputError, UsageError

PARTITION = "dist_root"
PIECE_GLOB = "part-*.parquet"


def is_dataset_path(path: str | os.PathLike) -> bool:
    """Whether an output names a dataset folder: it ends with ``/``, or is an existing folder whose name does
    not end like a results file (``-o x.csv`` on a folder stays an error)."""
    text = os.fspath(path)
    if text == "-":
        return False
    if text.endswith(("/", os.sep)):
        return True
    return Path(text).is_dir() and Path(text).suffix.lower() not in (".csv", ".parquet", ".pq", ".parq", ".jsonl",
                                                                      ".ndjson")


def check_dataset_root(path: str | os.PathLike) -> None:
    """Fail before compute when the dataset folder cannot be created or written."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise OutputError(f"-o {path}: exists and is not a folder")
    parent = root if root.is_dir() else root.parent
    if not parent.is_dir():
        raise OutputError(f"-o {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"-o {path}: not writable")


def partition_dir(root: Path, dist_root: str) -> Path:
    return root / f"{PARTITION}={quote(str(dist_root), safe='')}"


def shard_label(shard: dict | None) -> str:
    """``00001-of-00004`` from a provenance shard record (``00000-of-00001`` without one)."""
    if not shard:
        return "00000-of-00001"
    return f"{int(shard['index']):05d}-of-{int(shard['count']):05d}"


def piece_name(shard: dict | None) -> str:
    return f"part-{shard_label(shard)}.parquet"


def dist_root_of(piece: Path) -> str | None:
    """The ``dist_root`` a piece's folder names (``None``: not in a partition folder)."""
    name = piece.parent.name
    key, sep, value = name.partition("=")
    return unquote(value) if sep and key == PARTITION else None


class DatasetSink:
    """Writes a shard's rows as one Parquet file per distorted input under ``root``.

    Args:
        root: the dataset folder (created).
        columns: the full column order (``dist_root`` included; it is left out of the files).
        provenance: the run's provenance; ``inputs`` lists the distorted inputs (one file each, written
            even when this shard has no row for it, so a reader sees every shard) and ``shard`` names
            the shard.
        previous_rows: rows of an earlier, interrupted run of this shard (``--resume``), written first.
    """

    def __init__(self, root: Path, columns: tuple[str, ...], provenance: dict, *,
                 previous_rows: list[dict] | None = None):
        check_dataset_root(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.all_columns = tuple(columns)
        self.columns = tuple(c for c in columns if c != PARTITION)
        self.provenance = {**provenance, "dataset": {"columns": list(columns), "partitioning": "hive",
                                                      "partition": PARTITION, "encoding": "percent (uri)"}}
        self.name = piece_name(provenance.get("shard"))
        self.sinks: dict[str, object] = {}
        inputs = provenance.get("inputs") or {}
        for dist_root in inputs.get("dists") or inputs.get("groups") or []:
            self._sink(str(dist_root))
        if previous_rows:
            self.write(previous_rows)

    def _sink(self, dist_root: str):
        if dist_root not in self.sinks:
            from lpipscli.sinks.parquet import ParquetSink

            folder = partition_dir(self.root, dist_root)
            folder.mkdir(parents=True, exist_ok=True)
            self.sinks[dist_root] = ParquetSink(folder / self.name, self.columns, self.provenance)
        return self.sinks[dist_root]

    def write(self, rows: list[dict]) -> None:
        by_root: dict[str, list[dict]] = {}
        for row in rows:
            by_root.setdefault(str(row[PARTITION]), []).append(row)
        for dist_root, part in by_root.items():
            self._sink(dist_root).write(part)

    def close(self, summary: dict | None = None, *, complete: bool | None = None) -> None:
        for sink in self.sinks.values():
            sink.close(summary, complete=complete)


def pieces(root: Path) -> list[Path]:
    """The finished files of a dataset folder (partition folders first level, hidden files skipped)."""
    found = [p for p in sorted(root.glob(f"*/{PIECE_GLOB}")) if dist_root_of(p) is not None]
    return found + sorted(root.glob(PIECE_GLOB))


def read_piece(path: Path, fmt: str = "parquet"):
    """One file of a dataset (or its journal) as a :class:`lpipscli.results.ResultTable` with ``dist_root``
    put back in its column position."""
    from lpipscli.results import read_results

    table = read_results(path, fmt)
    dist_root = dist_root_of(path if fmt == "parquet" else _piece_of_journal(path))
    if dist_root is None or PARTITION in table.columns:
        return table
    order = ((table.provenance or {}).get("dataset") or {}).get("columns") or [PARTITION, *table.columns]
    for row in table.rows:
        row[PARTITION] = dist_root
    table.rows = [{c: row[c] for c in order} for row in table.rows]
    table.columns = list(order)
    table.kinds[PARTITION] = "str"
    return table


def _piece_of_journal(path: Path) -> Path:
    from lpipscli.sinks.parquet import journal_path

    name = path.name.removeprefix(".").removesuffix(".journal.jsonl")
    assert journal_path(path.with_name(name)) == path
    return path.with_name(name)


def resume_table(root: Path, shard: dict | None):
    """The rows this shard already wrote into a dataset folder (journals of a killed run included), as one
    :class:`~lpipscli.results.ResultTable`, or ``None`` when it wrote nothing yet."""
    from lpipscli.sinks.parquet import journal_path
    from lpipscli.sinks.text import trim_partial_line

    if not root.is_dir():
        return None
    tables = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and dist_root_of(p / "x") is not None):
        piece = folder / piece_name(shard)
        journal = journal_path(piece)
        if journal.is_file():
            trim_partial_line(journal)
            tables.append(read_piece(journal, "jsonl"))
        elif piece.is_file():
            tables.append(read_piece(piece))
    if not tables:
        return None
    first = tables[0]
    for table in tables[1:]:
        if (table.provenance or {}).get("settings_hash") != (first.provenance or {}).get("settings_hash"):
            raise UsageError(f"--resume: {table.path} and {first.path} were made with different settings")
        first.rows.extend(table.rows)
    return first


def read_dataset(root: str | os.PathLike):
    """A dataset folder as one :class:`lpipscli.results.ResultTable`, checked like ``lpips merge`` checks
    shards (same settings, every shard present, no row twice); rows in the canonical merged order.

    Raises:
        UsageError: no pieces, or the checks fail.
    """
    from lpipscli.merge import combine, read_inputs

    return combine(read_inputs([Path(root)]), source=str(root))
