"""Readers of human-judgment sets (lpipscli.sources.bapps): BAPPS 2AFC and JND layouts, MOS lists.

Layouts are built in tmp_path with tiny files; errors must be one line naming the files involved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpipscli.errors import PairingError, UsageError
from lpipscli.sources.bapps import read_2afc, read_jnd, read_mos_list


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def _npy(path: Path, value: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array([value], dtype=np.float32))  # BAPPS stores (1,) float arrays


def make_2afc(cat: Path, judges: dict[str, float]) -> None:
    for name, judge in judges.items():
        for d in ("ref", "p0", "p1"):
            _png(cat / d / f"{name}.png")
        _npy(cat / "judge" / f"{name}.npy", judge)


def test_2afc_split_with_categories_in_sorted_order(tmp_path):
    make_2afc(tmp_path / "val" / "traditional", {"001": 0.25, "000": 1.0})
    make_2afc(tmp_path / "val" / "cnn", {"000": 0.0})
    (tmp_path / "val" / "notes").mkdir()  # an unrelated folder is ignored
    triplets = read_2afc(tmp_path / "val")
    assert [(t.category, t.key, t.judge) for t in triplets] == [
        ("cnn", "000", 0.0), ("traditional", "000", 1.0), ("traditional", "001", 0.25)]
    t = triplets[1]
    assert t.ref == tmp_path / "val/traditional/ref/000.png" and t.p1 == tmp_path / "val/traditional/p1/000.png"


def test_2afc_single_category_folder(tmp_path):
    make_2afc(tmp_path / "superres", {"a": 0.5})
    (triplet,) = read_2afc(tmp_path / "superres")
    assert (triplet.category, triplet.key, triplet.judge) == ("superres", "a", 0.5)


def test_2afc_missing_and_extra_files_are_named(tmp_path):
    cat = tmp_path / "cnn"
    make_2afc(cat, {"000": 0.5, "001": 0.5})
    (cat / "p1" / "001.png").unlink()
    _png(cat / "ref" / "007.png")  # no partners, no judgment
    with pytest.raises(PairingError) as info:
        read_2afc(cat)
    message = str(info.value)
    assert "\n" not in message
    assert f"{cat / 'p1'} (001.png, 007.png)" in message
    assert f"{cat / 'judge'} (007.npy)" in message


def test_2afc_missing_folder_bad_judge_and_empty(tmp_path):
    make_2afc(tmp_path / "a", {"0": 0.5})
    (tmp_path / "a" / "judge" / "0.npy").unlink()
    (tmp_path / "a" / "judge").rmdir()
    with pytest.raises(PairingError, match="missing folder.*judge"):
        read_2afc(tmp_path / "a")
    make_2afc(tmp_path / "b", {"0": 1.5})
    with pytest.raises(PairingError, match=r"0\.npy: expected one judge fraction in \[0, 1\]"):
        read_2afc(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(PairingError, match="no BAPPS 2AFC data"):
        read_2afc(tmp_path / "c")


def test_jnd_layout(tmp_path):
    for cat, names in (("traditional", {"1": 0.0, "0": 2 / 3}), ("cnn", {"0": 1.0})):
        for name, same in names.items():
            _png(tmp_path / cat / "p0" / f"{name}.png")
            _png(tmp_path / cat / "p1" / f"{name}.png")
            _npy(tmp_path / cat / "same" / f"{name}.npy", same)
    pairs = read_jnd(tmp_path)
    assert [(p.category, p.key) for p in pairs] == [("cnn", "0"), ("traditional", "0"), ("traditional", "1")]
    assert pairs[1].same == pytest.approx(2 / 3, abs=1e-7)  # float32 on disk
    (tmp_path / "cnn" / "p0" / "0.png").unlink()
    with pytest.raises(PairingError, match=r"1 missing in .*cnn/p0 \(0\.png\)"):
        read_jnd(tmp_path)


def _mos_files(tmp_path: Path) -> None:
    _png(tmp_path / "ref" / "a.png")
    _png(tmp_path / "dist" / "a_1.png")
    _png(tmp_path / "dist" / "a_2.png")


def test_mos_csv_jsonl_parquet_relative_paths(tmp_path):
    _mos_files(tmp_path)
    rows = [{"reference": "ref/a.png", "image": "dist/a_1.png", "dmos": 12.5},
            {"reference": str(tmp_path / "ref/a.png"), "image": "dist/a_2.png", "dmos": 40}]
    (tmp_path / "list.csv").write_text("reference,image,dmos\n" + "".join(
        f"{r['reference']},{r['image']},{r['dmos']}\n" for r in rows))
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "list.parquet")
    for name in ("list.csv", "list.jsonl", "list.parquet"):
        items = read_mos_list(tmp_path / name, ref_col="reference", dist_col="image", score_col="dmos")
        assert [(i.key, i.ref, i.dist, i.score) for i in items] == [
            ("1", tmp_path / "ref/a.png", tmp_path / "dist/a_1.png", 12.5),
            ("2", tmp_path / "ref/a.png", tmp_path / "dist/a_2.png", 40.0)], name


def test_mos_errors(tmp_path):
    _mos_files(tmp_path)
    (tmp_path / "l.csv").write_text("ref,dist,mos\nref/a.png,dist/a_1.png,3\nref/a.png,dist/nope.png,2\n")
    with pytest.raises(PairingError, match=r"1 listed file\(s\) do not exist \(.*dist/nope\.png\)"):
        read_mos_list(tmp_path / "l.csv")
    with pytest.raises(UsageError, match=r"no column\(s\) score \(columns: ref, dist, mos\)"):
        read_mos_list(tmp_path / "l.csv", score_col="score")
    (tmp_path / "n.csv").write_text("ref,dist,mos\nref/a.png,dist/a_1.png,high\n")
    with pytest.raises(UsageError, match="row 1: mos = 'high' is not a finite number"):
        read_mos_list(tmp_path / "n.csv")
    (tmp_path / "e.csv").write_text("ref,dist,mos\n")
    with pytest.raises(UsageError, match="no rows"):
        read_mos_list(tmp_path / "e.csv")
