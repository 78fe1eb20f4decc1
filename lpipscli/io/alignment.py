"""Frame alignment you can trust: find where per-frame scores break, and pair frames by content.

Two pure tools, no decoding:

- :func:`detect_breaks` reads a per-frame score series (higher is better, e.g. PSNR in dB) and reports
  where it falls and stays low (a *break*), and, given a cheap pair scorer, whether shifting the
  distorted side by one frame (or up to ``max_shift``) from there explains the break: the signature of
  a dropped frame (shift ``-1``: reference frame ``i`` now matches distorted frame ``i - 1``) or of a
  repeated/inserted frame (shift ``+1``).
- :func:`align_auto` pairs each distorted frame with its best-matching reference frame by dynamic
  programming over a small window around the diagonal: monotone in time, every non 1:1 step paid a
  penalty (so a clean clip stays 1:1, and static content does not invent steps), listing dropped,
  repeated and shifted frames.

Both work on *signatures*: small area-averaged luma thumbnails (:func:`luma_signature`) compared by
their PSNR (:func:`signature_psnr`), which is cheap (a 32x18 thumbnail per frame) and insensitive to
coding noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Alignment",
    "Break",
    "align_auto",
    "detect_breaks",
    "luma_signature",
    "signature_psnr",
]

SIGNATURE_SIZE = (32, 18)
"""Default thumbnail size (width, height) of :func:`luma_signature`."""

_PSNR_CAP = 100.0  # dB: identical signatures, and the cap applied to +inf scores in detect_breaks


def luma_signature(y: np.ndarray, bit_depth: int = 8, size: tuple[int, int] = SIGNATURE_SIZE) -> np.ndarray:
    """Area-averaged luma thumbnail in ``[0, 1]``: float32 ``(h, w)`` with ``(w, h) = size``.

    Args:
        y: luma plane ``(H, W)`` (integers at ``bit_depth``, e.g. :attr:`Frame.planes[0]`).
        bit_depth: bits per sample of ``y``.
        size: thumbnail ``(width, height)``; clipped to the plane's size.

    Returns:
        The thumbnail: each cell the mean of its block of pixels (blocks as even as integer edges allow).
    """
    y = np.asarray(y)
    height, width = y.shape
    tw, th = min(size[0], width), min(size[1], height)
    rows = np.linspace(0, height, th + 1).astype(np.int64)
    cols = np.linspace(0, width, tw + 1).astype(np.int64)
    sums = np.add.reduceat(np.add.reduceat(y.astype(np.float64), rows[:-1], axis=0), cols[:-1], axis=1)
    counts = np.outer(np.diff(rows), np.diff(cols))
    return (sums / counts / ((1 << bit_depth) - 1)).astype(np.float32)


def signature_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two signatures in ``[0, 1]``, capped at 100 dB (identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return _PSNR_CAP if mse <= 10 ** (-_PSNR_CAP / 10) else -10.0 * np.log10(mse)


# --------------------------------------------------------------------------------------------------
# Breaks


@dataclass(frozen=True)
class Break:
    """A stretch of frames whose scores fell and stayed low.

    Attributes:
        start: first low frame (index into the score series).
        end: first frame after the break that is back at the level before it; ``None``: low to the end.
        before: median score of the frames before the break (the level it fell from).
        during: median score within the break.
        shift: the distorted-frame shift that explains it (``-1``: a distorted frame is missing, i.e.
            dropped, at about ``start``; ``+1``: a frame was repeated or inserted), ``None`` when no shift
            within ``max_shift`` does, or when no pair scorer was given.
        shifted_score: median pair score (scorer's units) with that shift, over the probed frames.
        unshifted_score: median pair score without a shift, over the same frames.
    """

    start: int
    end: int | None
    before: float
    during: float
    shift: int | None = None
    shifted_score: float | None = None
    unshifted_score: float | None = None

    @property
    def explained(self) -> bool:
        """A shift explains the break."""
        return self.shift is not None

    def describe(self) -> str:
        """One line for a summary."""
        span = f"frames {self.start}-{self.end - 1}" if self.end is not None else f"frames {self.start}-end"
        text = f"scores fall from about {self.before:.4g} to {self.during:.4g} at {span}"
        if self.shift == -1:
            return text + "; pairing each reference frame with the previous distorted frame restores them " \
                          f"(a distorted frame is missing near frame {self.start})"
        if self.shift == 1:
            return text + "; pairing each reference frame with the next distorted frame restores them " \
                          f"(a distorted frame is repeated near frame {self.start})"
        if self.shift is not None:
            return text + f"; a shift of {self.shift:+d} distorted frames restores them"
        return text + "; no shift of the distorted frames explains it"


def detect_breaks(
    scores: Sequence[float] | np.ndarray,
    *,
    min_drop: float = 3.0,
    min_run: int = 3,
    window: int = 8,
    score_pair: Callable[[int, int], float | None] | None = None,
    max_shift: int = 1,
    probe: int = 5,
) -> list[Break]:
    """Where a per-frame score series falls and stays low, and whether a frame shift explains it.

    ``scores[i]`` is the score of reference frame ``i`` against the distorted frame it was paired with
    (``i``, in the pairing's own numbering). A break starts at the first frame that is more than
    ``min_drop`` below the median of the last ``window`` good frames and whose next ``min_run`` frames
    have a median that low too (single-frame dips are not breaks); it ends where the series is back
    within ``min_drop`` of that level for ``min_run`` frames. ``+inf`` scores (identical frames) count
    as 100; NaN scores are ignored.

    Args:
        scores: per-frame scores, higher is better (PSNR in dB suits the default ``min_drop``).
        min_drop: how far (in score units) a frame must fall below the level to count as low.
        min_run: frames that must stay low for a break to start (and good for it to end).
        window: good frames the level is the median of.
        score_pair: optional ``(ref_index, dist_index) -> score`` of a cheap metric in dB (e.g.
            :func:`signature_psnr` of :func:`luma_signature` thumbnails); ``None`` (or raising
            ``IndexError``) for indices outside the sources. Used to test shifts.
        max_shift: shifts ``-max_shift .. +max_shift`` are tried.
        probe: frames from the break's start scored per shift.

    Returns:
        The breaks, in order.
    """
    s = np.asarray(scores, dtype=np.float64).copy()
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    s[np.isposinf(s)] = _PSNR_CAP
    s = np.minimum(s, _PSNR_CAP)
    valid = np.flatnonzero(~np.isnan(s))
    s = s[valid]  # positions in `valid` map back to frame indices
    n = s.shape[0]
    breaks: list[tuple[int, int | None, float]] = []
    recent: list[float] = []
    start: int | None = None
    level = 0.0
    for i in range(n):
        ahead = float(np.median(s[i: i + min_run]))
        if start is None:
            level = float(np.median(recent[-window:])) if recent else s[i]
            if s[i] < level - min_drop and ahead < level - min_drop:
                start = i
            else:
                recent.append(float(s[i]))
        elif s[i] >= level - min_drop and ahead >= level - min_drop:
            breaks.append((start, i, level))
            start = None
            recent.append(float(s[i]))
    if start is not None:
        breaks.append((start, None, level))

    out = []
    for b_start, b_end, before in breaks:
        stop = n if b_end is None else b_end
        during = float(np.median(s[b_start:stop]))
        first = int(valid[b_start])
        last = None if b_end is None else int(valid[b_end])
        found = _explain(first, int(valid[stop - 1]) + 1, score_pair, max_shift, probe, min_drop) \
            if score_pair else None
        shift, shifted, unshifted = found if found else (None, None, None)
        out.append(Break(start=first, end=last, before=before, during=during, shift=shift,
                         shifted_score=shifted, unshifted_score=unshifted))
    return out


def _pair_score(score_pair: Callable[[int, int], float | None], i: int, j: int) -> float | None:
    if i < 0 or j < 0:
        return None
    try:
        value = score_pair(i, j)
    except IndexError:
        return None
    return None if value is None or np.isnan(value) else min(float(value), _PSNR_CAP)


def _explain(start: int, stop: int, score_pair, max_shift: int, probe: int,
             min_drop: float) -> tuple[int | None, float | None, float | None]:
    frames = range(start, min(stop, start + probe))
    before = [v for i in range(max(0, start - probe), start) if (v := _pair_score(score_pair, i, i)) is not None]
    here = [v for i in frames if (v := _pair_score(score_pair, i, i)) is not None]
    if not here:
        return None, None, None
    unshifted = float(np.median(here))
    target = float(np.median(before)) - min_drop if before else unshifted + min_drop
    best: tuple[float, int] | None = None
    for shift in sorted(range(-max_shift, max_shift + 1), key=abs):
        if shift == 0:
            continue
        values = [v for i in frames if (v := _pair_score(score_pair, i, i + shift)) is not None]
        if values:
            score = float(np.median(values))
            if best is None or score > best[0]:
                best = (score, shift)
    if best is None:
        return None, None, unshifted
    if best[0] >= target and best[0] > unshifted + min_drop:
        return best[1], best[0], unshifted
    return None, best[0], unshifted


# --------------------------------------------------------------------------------------------------
# Content alignment


@dataclass
class Alignment:
    """The pairing :func:`align_auto` chose.

    Attributes:
        ref_index: int64 ``(D,)``: the reference frame paired with each distorted frame (non-decreasing).
        score: float64 ``(D,)``: signature PSNR (dB) of each pair.
        dropped: reference frames between the first and the last paired ones that no distorted frame
            is paired with (frames the distorted stream dropped).
        repeated: distorted frames paired with the same reference frame as the distorted frame before
            them (repeated or inserted frames).
        shifted: runs ``(first_dist, stop_dist, shift)`` of consecutive distorted frames paired with
            reference frame ``dist + shift``, ``shift != 0`` (a constant offset is one run over all frames).
        unpaired_head, unpaired_tail: reference frames before the first / after the last paired one.
    """

    ref_index: np.ndarray
    score: np.ndarray
    dropped: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    shifted: list[tuple[int, int, int]] = field(default_factory=list)
    unpaired_head: int = 0
    unpaired_tail: int = 0

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """``(ref_index, dist_index)`` for every distorted frame, in order."""
        return [(int(r), d) for d, r in enumerate(self.ref_index)]

    @property
    def is_identity(self) -> bool:
        """Every distorted frame ``j`` is paired with reference frame ``j`` (nothing to report)."""
        return not self.dropped and not self.repeated and not self.shifted

    def describe(self) -> list[str]:
        """Lines for a summary: every dropped, repeated and shifted frame."""
        lines = [f"reference frame {r} has no distorted counterpart (dropped)" for r in self.dropped]
        lines += [f"distorted frame {d} repeats reference frame {int(self.ref_index[d])}" for d in self.repeated]
        lines += [f"distorted frames {a}-{b - 1} pair with reference frames {a + s}-{b - 1 + s} (shift {s:+d})"
                  for a, b, s in self.shifted]
        return lines


def align_auto(
    ref_signatures: Sequence[np.ndarray] | np.ndarray,
    dist_signatures: Sequence[np.ndarray] | np.ndarray,
    window: int = 4,
    *,
    penalty: float = 1.0,
    max_step: int | None = None,
) -> Alignment:
    """Pair each distorted frame with its best-matching reference frame, monotone in time.

    Dynamic programming over distorted frames ``j`` and reference frames ``i`` with ``|i - j| <= window``:
    the cost of a pair is ``-signature_psnr`` (dB), consecutive pairs advance the reference by
    ``0 .. max_step`` frames, and every step other than 1 costs ``penalty`` dB per frame skipped or
    repeated (a start at reference frame ``i > 0`` costs ``penalty * i``). The cheapest path is returned.

    Args:
        ref_signatures: ``(R, ...)`` thumbnails (e.g. :func:`luma_signature`) of the reference frames.
        dist_signatures: ``(D, ...)`` thumbnails of the distorted frames, same shape each.
        window: largest drift (frames) between a distorted frame's index and its reference frame's.
        penalty: dB paid per skipped or repeated frame; larger values resist spurious steps on static
            content, smaller ones catch steps between near-identical frames.
        max_step: most reference frames one step may advance (default ``window + 1``).

    Returns:
        The :class:`Alignment`.

    Raises:
        ValueError: empty inputs, signature shapes that differ, ``window < 0``.
    """
    ref = np.asarray(ref_signatures, dtype=np.float64)
    dist = np.asarray(dist_signatures, dtype=np.float64)
    if ref.shape[0] == 0 or dist.shape[0] == 0:
        raise ValueError("align_auto needs at least one reference and one distorted signature")
    if ref.shape[1:] != dist.shape[1:]:
        raise ValueError(f"signature shapes differ: reference {ref.shape[1:]}, distorted {dist.shape[1:]}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    n_ref, n_dist = ref.shape[0], dist.shape[0]
    ref = ref.reshape(n_ref, -1)
    dist = dist.reshape(n_dist, -1)
    step_max = window + 1 if max_step is None else max_step
    width = 2 * window + 1
    # psnr[j, k]: signature PSNR of distorted j against reference j - window + k
    psnr = np.full((n_dist, width), -np.inf)
    for k in range(width):
        offset = k - window
        js = np.arange(max(0, -offset), min(n_dist, n_ref - offset))
        if js.size:
            mse = np.mean((dist[js] - ref[js + offset]) ** 2, axis=1)
            psnr[js, k] = np.where(mse <= 10 ** (-_PSNR_CAP / 10), _PSNR_CAP,
                                   -10.0 * np.log10(np.maximum(mse, 1e-300)))
    cost = -psnr  # +inf outside the sources
    total = np.full((n_dist, width), np.inf)
    back = np.zeros((n_dist, width), dtype=np.int64)
    for k in range(width):
        i = k - window
        if i >= 0:
            total[0, k] = cost[0, k] + penalty * i
    for j in range(1, n_dist):
        for k in range(width):
            if not np.isfinite(cost[j, k]):
                continue
            i = j - window + k
            best, best_k = np.inf, -1
            for step in range(0, step_max + 1):
                prev_i = i - step
                pk = prev_i - (j - 1) + window
                if not 0 <= pk < width:
                    continue
                value = total[j - 1, pk] + (0.0 if step == 1 else penalty * (1 if step == 0 else step - 1))
                if value < best:
                    best, best_k = value, pk
            if best_k >= 0:
                total[j, k] = best + cost[j, k]
                back[j, k] = best_k
    if not np.isfinite(total[-1]).any():
        raise ValueError("no monotone pairing within the window; increase window")
    path = np.zeros(n_dist, dtype=np.int64)
    k = int(np.argmin(total[-1]))
    for j in range(n_dist - 1, -1, -1):
        path[j] = j - window + k
        k = back[j, k]
    score = psnr[np.arange(n_dist), path - np.arange(n_dist) + window]
    return _describe(path, score, n_ref)


def _describe(path: np.ndarray, score: np.ndarray, n_ref: int) -> Alignment:
    dropped: list[int] = []
    repeated: list[int] = []
    for j in range(1, path.shape[0]):
        step = int(path[j] - path[j - 1])
        if step == 0:
            repeated.append(j)
        elif step > 1:
            dropped.extend(range(int(path[j - 1]) + 1, int(path[j])))
    shifts = path - np.arange(path.shape[0])
    shifted: list[tuple[int, int, int]] = []
    j = 0
    while j < path.shape[0]:
        end = j
        while end < path.shape[0] and shifts[end] == shifts[j]:
            end += 1
        if shifts[j] != 0:
            shifted.append((j, end, int(shifts[j])))
        j = end
    return Alignment(ref_index=path, score=score, dropped=dropped, repeated=repeated, shifted=shifted,
                     unpaired_head=int(path[0]), unpaired_tail=int(n_ref - 1 - path[-1]))
