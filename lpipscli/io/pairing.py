"""Pair reference and distorted files by relative path without extension; never by position."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lpipscli.errors import PairingError
from lpipscli.io.discovery import IMAGE_EXTENSIONS, find_images, is_image_name

_SHOW = 3  # how many names a message lists


@dataclass(frozen=True)
class Pair:
    """One reference/distorted pair.

    Attributes:
        key: the pairing key (relative path without extension, POSIX).
        ref_path: reference file.
        dist_path: distorted file.
        dist_root: the distorted input as given on the command line (column ``dist_root``).
    """

    key: str
    ref_path: Path
    dist_path: Path
    dist_root: str

    def row_fields(self) -> dict:
        """Columns this kind of pair adds to its row (between ``dist_root`` and ``width``)."""
        return {}


@dataclass(frozen=True)
class FramePair(Pair):
    """A pair of video frames: reference frame ``frame`` against distorted frame ``dist_frame``.

    Attributes:
        frame: reference frame index (column ``frame``).
        dist_frame: distorted frame index (``frame + offset``; column ``dist_frame``).
        time: seconds, from the reference's timestamps (None for frame folders; column ``time``).
    """

    frame: int = 0
    dist_frame: int = 0
    time: float | None = None

    def row_fields(self) -> dict:
        return {"frame": self.frame, "dist_frame": self.dist_frame,
                "time": float("nan") if self.time is None else float(self.time)}


@dataclass(frozen=True)
class RefGroup:
    """A reference and every distorted version of it (one per distorted input that has one)."""

    key: str
    ref_path: Path
    pairs: tuple[Pair, ...]


@dataclass
class PairPlan:
    """Result of pairing: the groups to score plus what did not pair."""

    groups: list[RefGroup]
    unmatched_ref: dict[str, list[str]] = field(default_factory=dict)  # dist root -> ref keys
    unmatched_dist: dict[str, list[str]] = field(default_factory=dict)  # dist root -> dist files

    @property
    def n_pairs(self) -> int:
        return sum(len(g.pairs) for g in self.groups)

    def unmatched_summary(self) -> dict:
        roots = [r for r in {**self.unmatched_ref, **self.unmatched_dist} if self.unmatched_ref.get(r)
                 or self.unmatched_dist.get(r)]
        return {
            "unmatched_ref": {k: len(v) for k, v in self.unmatched_ref.items() if v},
            "unmatched_dist": {k: len(v) for k, v in self.unmatched_dist.items() if v},
            "unmatched_examples": {
                r: {"ref": self.unmatched_ref.get(r, [])[:_SHOW], "dist": self.unmatched_dist.get(r, [])[:_SHOW]}
                for r in roots
            },
        }


def _entries(root: Path) -> dict[str, Path]:
    """Map pairing key -> file for a folder (recursive) or a single file."""
    if root.is_file():
        if not is_image_name(root.name):
            raise PairingError(
                f"{root}: not an image file name (accepted extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        return {PurePosixPath(root.name).stem: root}
    entries: dict[str, Path] = {}
    duplicates: dict[str, list[str]] = {}
    for rel in find_images(root):
        key = str(rel.with_suffix(""))
        if key in entries:
            duplicates.setdefault(key, [entries[key].name]).append(rel.name)
        else:
            entries[key] = root / rel
    if duplicates:
        shown = "; ".join(f"{k} ({', '.join(v)})" for k, v in list(duplicates.items())[:_SHOW])
        raise PairingError(
            f"{root}: {len(duplicates)} name(s) exist with several extensions, so pairing is ambiguous: {shown}"
            + (" ..." if len(duplicates) > _SHOW else "")
            + "; remove or rename one of each"
        )
    return entries


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def pair_inputs(ref: Path, dists: list[Path] | tuple[Path, ...], *, allow_unmatched: bool = False) -> PairPlan:
    """Pair ``ref`` with each distorted input.

    Folders are walked recursively and files pair by relative path without extension
    (``ref/a/b.png`` with ``out/a/b.jpg``); a single file pairs with the file of the same stem at the
    top of a folder, and two single files pair with each other whatever their names.

    Raises:
        PairingError: unmatched files on either side (unless ``allow_unmatched``), ambiguous stems,
            missing inputs, or nothing to pair at all.
    """
    if not dists:
        raise PairingError("give at least one distorted input after the reference")
    labels = [str(d) for d in dists]
    if len(set(labels)) != len(labels):
        raise PairingError(f"a distorted input is given twice: {', '.join(labels)}")
    ref_entries = _entries(ref)
    single_files = ref.is_file()
    per_key: dict[str, list[Pair]] = {k: [] for k in ref_entries}
    plan = PairPlan(groups=[])
    problems: list[str] = []
    for dist, label in zip(dists, labels, strict=True):
        dist_entries = _entries(dist)
        if single_files and dist.is_file():
            (ref_key,) = ref_entries
            (dist_file,) = dist_entries.values()
            per_key[ref_key].append(Pair(ref_key, ref_entries[ref_key], dist_file, label))
            continue
        missing = [k for k in ref_entries if k not in dist_entries]
        extra = [str(dist_entries[k]) for k in dist_entries if k not in ref_entries]
        for key in ref_entries:
            if key in dist_entries:
                per_key[key].append(Pair(key, ref_entries[key], dist_entries[key], label))
        plan.unmatched_ref[label] = missing
        plan.unmatched_dist[label] = extra
        if missing:
            problems.append(f"{len(missing)} of {len(ref_entries)} reference image(s) have no partner in "
                            f"{label} ({_names(missing)})")
        if extra:
            problems.append(f"{len(extra)} file(s) in {label} have no reference ({_names(extra)})")
    if problems and not allow_unmatched:
        raise PairingError(
            "pairing failed: " + "; ".join(problems) + "; pass --allow-unmatched to score the pairs that match"
        )
    plan.groups = [RefGroup(k, ref_entries[k], tuple(v)) for k, v in per_key.items() if v]
    if not plan.groups:
        raise PairingError(f"nothing to compare: no file in {', '.join(labels)} pairs with one in {ref}")
    return plan
