"""Tests for lpipscli.io.discovery and lpipscli.io.pairing: which files are found and how they pair.

Pairing never decodes anything, so the "images" here are empty files with image names unless a test
needs real pixels. Every expectation is written from the rule (relative path without extension,
sorted, hidden entries skipped), never read back from the code under test.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpipscli.errors import PairingError
from lpipscli.io.discovery import IMAGE_EXTENSIONS, find_images
from lpipscli.io.pairing import PairPlan, pair_inputs

ACCEPTED = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp")


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def pairs_of(plan: PairPlan) -> list[tuple[str, str, str, str]]:
    """(key, ref file, dist file, dist_root) of every pair, in plan order."""
    return [(p.key, str(p.ref_path), str(p.dist_path), p.dist_root) for g in plan.groups for p in g.pairs]


# --------------------------------------------------------------------------------------------------
# Discovery


def test_accepted_extensions_are_the_documented_ones():
    assert {e.lstrip(".") for e in IMAGE_EXTENSIONS} == set(ACCEPTED)


def test_find_images_sorted_recursive_hidden_skipped_case_insensitive(tmp_path):
    touch(tmp_path, "b.png", "a.PNG", "c/z.JpEg", "c/d/y.TIFF", "c/d/x.webp", "m.bmp", "n.tif", "o.jpg",
          ".hidden.png", ".git/k.png", "c/.cache/k.png", "notes.txt", "model.pth", "c/readme.md", "noext")
    found = find_images(tmp_path)
    expected = ["a.PNG", "b.png", "c/d/x.webp", "c/d/y.TIFF", "c/z.JpEg", "m.bmp", "n.tif", "o.jpg"]
    assert [str(p) for p in found] == expected
    assert all(isinstance(p, PurePosixPath) for p in found)


def test_find_images_empty_folder_lists_accepted_extensions(tmp_path):
    touch(tmp_path, "notes.txt", ".hidden.png")
    with pytest.raises(PairingError) as info:
        find_images(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for ext in ACCEPTED:
        assert f".{ext}" in message


def test_symlink_loop_is_an_error_not_a_hang(tmp_path):
    ref = tmp_path / "ref"
    touch(ref, "a/b.png")
    os.symlink(ref, ref / "a" / "loop", target_is_directory=True)
    with pytest.raises(PairingError, match="symlink loop"):
        find_images(ref)


def test_symlinked_folder_is_followed(tmp_path):
    touch(tmp_path / "elsewhere", "x.png")
    touch(tmp_path / "ref", "a.png")
    os.symlink(tmp_path / "elsewhere", tmp_path / "ref" / "linked", target_is_directory=True)
    assert [str(p) for p in find_images(tmp_path / "ref")] == ["a.png", "linked/x.png"]


def test_missing_root_is_a_pairing_error(tmp_path):
    with pytest.raises(PairingError, match="no such file"):
        pair_inputs(tmp_path / "nope", [tmp_path])


# --------------------------------------------------------------------------------------------------
# Pairing


def test_pairs_by_relative_path_without_extension_across_nested_folders(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a/b.png", "a/c/d.png", "top.bmp", "z.png")
    touch(out, "a/b.jpg", "a/c/d.webp", "top.PNG", "z.tif")
    plan = pair_inputs(ref, [out])
    assert pairs_of(plan) == [
        ("a/b", str(ref / "a/b.png"), str(out / "a/b.jpg"), str(out)),
        ("a/c/d", str(ref / "a/c/d.png"), str(out / "a/c/d.webp"), str(out)),
        ("top", str(ref / "top.bmp"), str(out / "top.PNG"), str(out)),
        ("z", str(ref / "z.png"), str(out / "z.tif"), str(out)),
    ]
    assert plan.n_pairs == 4
    assert not any(plan.unmatched_ref.values()) and not any(plan.unmatched_dist.values())


def test_same_name_in_other_folder_does_not_pair(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a/b.png")
    touch(out, "b.png")  # same file name, different relative path
    with pytest.raises(PairingError):
        pair_inputs(ref, [out])


def test_never_pairs_by_position(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "1.png", "2.png", "3.png")
    touch(out, "2.png", "3.png", "4.png")
    plan = pair_inputs(ref, [out], allow_unmatched=True)
    assert [(k, Path(r).name, Path(d).name) for k, r, d, _ in pairs_of(plan)] == [
        ("2", "2.png", "2.png"), ("3", "3.png", "3.png")]
    assert plan.unmatched_ref[str(out)] == ["1"]
    assert plan.unmatched_dist[str(out)] == [str(out / "4.png")]


def test_hidden_and_non_image_files_do_not_count_as_unmatched(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png", ".DS_Store", ".thumbs/a.png", "list.txt")
    touch(out, "a.jpg", ".a.jpg", "._a.jpg", "log.csv", ".ipynb_checkpoints/a.jpg")
    plan = pair_inputs(ref, [out])
    assert [k for k, *_ in pairs_of(plan)] == ["a"]


def test_unmatched_is_one_line_error_with_counts_and_first_names(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, *[f"r{i}.png" for i in range(6)], "both.png")
    touch(out, "both.jpg", "extra_1.jpg", "extra_2.jpg")
    with pytest.raises(PairingError) as info:
        pair_inputs(ref, [out])
    message = str(info.value)
    assert "\n" not in message
    assert "6 of 7" in message  # six references without a partner, out of seven
    assert "r0" in message  # the first names are shown...
    assert "r5" not in message  # ...but not all of them
    assert "2 file(s)" in message and "extra_1" in message
    assert "--allow-unmatched" in message


def test_unmatched_only_on_dist_side_is_an_error(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png")
    touch(out, "a.png", "b.png")
    with pytest.raises(PairingError, match="1 file"):
        pair_inputs(ref, [out])


def test_allow_unmatched_keeps_the_rest_in_the_plan(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png", "b.png", "sub/c.png")
    touch(out, "a.jpg", "sub/c.jpg", "sub/d.jpg")
    plan = pair_inputs(ref, [out], allow_unmatched=True)
    assert [k for k, *_ in pairs_of(plan)] == ["a", "sub/c"]
    assert plan.unmatched_ref == {str(out): ["b"]}
    assert plan.unmatched_dist == {str(out): [str(out / "sub/d.jpg")]}
    summary = plan.unmatched_summary()
    assert summary["unmatched_ref"] == {str(out): 1}
    assert summary["unmatched_dist"] == {str(out): 1}


def test_unmatched_summary_keeps_reference_examples(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png", "b.png")
    touch(out, "a.png")
    summary = pair_inputs(ref, [out], allow_unmatched=True).unmatched_summary()
    assert summary["unmatched_ref"] == {str(out): 1}
    assert "b" in json.dumps(summary["unmatched_examples"])


@pytest.mark.parametrize("side", ["ref", "out"])
def test_duplicate_stems_in_one_folder_are_an_error_naming_them(tmp_path, side):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png", "sub/x.png")
    touch(out, "a.png", "sub/x.png")
    touch(tmp_path / side, "sub/x.jpg")
    with pytest.raises(PairingError) as info:
        pair_inputs(ref, [out], allow_unmatched=True)  # ambiguity is never allowed
    message = str(info.value)
    assert "\n" not in message
    assert "x.png" in message and "x.jpg" in message and "sub/x" in message


def test_empty_folder_is_an_error_listing_extensions(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    touch(ref, "a.png")
    out.mkdir()
    with pytest.raises(PairingError) as info:
        pair_inputs(ref, [out])
    assert str(out) in str(info.value)
    assert ".png" in str(info.value) and ".webp" in str(info.value)


def test_single_file_pairs_with_single_file_whatever_the_names(tmp_path):
    touch(tmp_path, "original.png", "other dir/compressed_q30.jpg")
    plan = pair_inputs(tmp_path / "original.png", [tmp_path / "other dir/compressed_q30.jpg"])
    assert pairs_of(plan) == [("original", str(tmp_path / "original.png"),
                               str(tmp_path / "other dir/compressed_q30.jpg"),
                               str(tmp_path / "other dir/compressed_q30.jpg"))]


def test_single_file_pairs_with_same_stem_at_top_of_folder(tmp_path):
    touch(tmp_path / "ref", "a.png")
    touch(tmp_path / "out", "a.jpg", "sub/a.jpg")
    with pytest.raises(PairingError, match="sub/a"):  # the nested a.jpg has no reference
        pair_inputs(tmp_path / "ref" / "a.png", [tmp_path / "out"])
    plan = pair_inputs(tmp_path / "ref" / "a.png", [tmp_path / "out"], allow_unmatched=True)
    assert [(k, Path(d).relative_to(tmp_path).as_posix()) for k, _, d, _ in pairs_of(plan)] == [("a", "out/a.jpg")]


def test_hidden_root_itself_is_walked(tmp_path):
    touch(tmp_path / ".cache" / "ref", "a.png")
    touch(tmp_path / ".cache" / "out", "a.png")
    assert pair_inputs(tmp_path / ".cache" / "ref", [tmp_path / ".cache" / "out"]).n_pairs == 1


def test_single_file_with_non_image_name_is_refused(tmp_path):
    touch(tmp_path, "a.png", "b.txt")
    with pytest.raises(PairingError):
        pair_inputs(tmp_path / "a.png", [tmp_path / "b.txt"])


def test_several_dist_roots_one_pair_per_root(tmp_path):
    ref = tmp_path / "ref"
    roots = [tmp_path / "q10", tmp_path / "q30", tmp_path / "q70"]
    touch(ref, "a.png", "d/b.png")
    for root in roots:
        touch(root, "a.jpg", "d/b.jpg")
    plan = pair_inputs(ref, roots)
    assert [g.key for g in plan.groups] == ["a", "d/b"]
    for group in plan.groups:
        assert [p.dist_root for p in group.pairs] == [str(r) for r in roots]
        assert all(p.ref_path == group.ref_path for p in group.pairs)
        assert [p.dist_path for p in group.pairs] == [r / f"{group.key}.jpg" for r in roots]
    assert plan.n_pairs == 6


def test_several_dist_roots_with_a_gap(tmp_path):
    ref, full, partial = tmp_path / "ref", tmp_path / "full", tmp_path / "partial"
    touch(ref, "a.png", "b.png")
    touch(full, "a.png", "b.png")
    touch(partial, "b.png")
    with pytest.raises(PairingError, match="partial"):
        pair_inputs(ref, [full, partial])
    plan = pair_inputs(ref, [full, partial], allow_unmatched=True)
    assert [[p.dist_root for p in g.pairs] for g in plan.groups] == [[str(full)], [str(full), str(partial)]]
    assert plan.unmatched_ref == {str(full): [], str(partial): ["a"]}


def test_dist_root_given_twice_is_refused(tmp_path):
    touch(tmp_path / "ref", "a.png")
    touch(tmp_path / "out", "a.png")
    with pytest.raises(PairingError):
        pair_inputs(tmp_path / "ref", [tmp_path / "out", tmp_path / "out"])


def test_names_with_spaces_and_non_ascii(tmp_path):
    ref, out = tmp_path / "réf erence", tmp_path / "sortie 出力"
    names = ["my photo.png", "Ünïcödé/ça va.png", "日本語/画像 1.png"]
    touch(ref, *names)
    touch(out, *[n.replace(".png", ".JPG") for n in names])
    plan = pair_inputs(ref, [out])
    assert [k for k, *_ in pairs_of(plan)] == sorted(n[:-4] for n in names)
    for key, ref_file, dist_file, _ in pairs_of(plan):
        assert Path(ref_file).is_file() and Path(dist_file).is_file()
        assert ref_file == str(ref / f"{key}.png") and dist_file == str(out / f"{key}.JPG")


# --------------------------------------------------------------------------------------------------
# Property: pairing is the intersection of keys, whatever the tree

_segment = st.text(alphabet="abcxyz019_", min_size=1, max_size=4)
_key = st.lists(_segment, min_size=1, max_size=3).map("/".join)
_ext = st.sampled_from(["png", "PNG", "jpg", "JpEg", "bmp", "tif", "TIFF", "webp"])


@st.composite
def _trees(draw):
    keys = draw(st.sets(_key, min_size=1, max_size=12))
    # a key must not also be a folder of another key's file with the same name ("a" file + "a/b" is
    # fine on disk, since the file is "a.png"); keep everything; then choose each side's subset
    ref_keys = draw(st.sets(st.sampled_from(sorted(keys)), min_size=1))
    dist_keys = draw(st.sets(st.sampled_from(sorted(keys)), min_size=1))
    ref_ext = {k: draw(_ext) for k in ref_keys}
    dist_ext = {k: draw(_ext) for k in dist_keys}
    return ref_ext, dist_ext


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees())
def test_property_pairs_are_the_key_intersection(tree):
    ref_ext, dist_ext = tree
    with tempfile.TemporaryDirectory() as tmp:
        ref, out = Path(tmp) / "ref", Path(tmp) / "out"
        touch(ref, *[f"{k}.{e}" for k, e in ref_ext.items()])
        touch(out, *[f"{k}.{e}" for k, e in dist_ext.items()])
        common = set(ref_ext) & set(dist_ext)
        if not common:
            with pytest.raises(PairingError):
                pair_inputs(ref, [out], allow_unmatched=True)
            return
        plan = pair_inputs(ref, [out], allow_unmatched=True)
        got = pairs_of(plan)
        assert [k for k, *_ in got] == sorted(common, key=lambda k: str(PurePosixPath(f"{k}.{ref_ext[k]}")))
        for key, ref_file, dist_file, root in got:
            assert ref_file == str(ref / f"{key}.{ref_ext[key]}")
            assert dist_file == str(out / f"{key}.{dist_ext[key]}")
            assert root == str(out)
        assert sorted(plan.unmatched_ref[str(out)]) == sorted(set(ref_ext) - set(dist_ext))
        assert sorted(plan.unmatched_dist[str(out)]) == sorted(
            str(out / f"{k}.{dist_ext[k]}") for k in set(dist_ext) - set(ref_ext))
        if common != set(ref_ext) or common != set(dist_ext):
            with pytest.raises(PairingError):
                pair_inputs(ref, [out])
        else:
            assert pairs_of(pair_inputs(ref, [out])) == got
