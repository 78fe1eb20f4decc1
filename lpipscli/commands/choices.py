"""Option choices shared by several commands (`compare`, `diff`, `summary`, `merge`, `eval`)."""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


class LpipsVersion(str, Enum):
    v01 = "0.1"
    v00 = "0.0"
