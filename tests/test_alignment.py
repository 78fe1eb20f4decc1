"""Alignment: breaks in per-frame scores, and content pairing of dropped / repeated / offset frames.

Clips are arrays made here: a moving pattern (reference) and a noisy copy (the "encode"), from which a
frame is dropped, a frame is duplicated, or the start is cut; the expected pairings are the ones the
clips were built with.
"""

from __future__ import annotations

import numpy as np
import pytest
from _video_clips import synthetic_planes

from lpipscli.io.alignment import Break, align_auto, detect_breaks, luma_signature, signature_psnr

N = 30
K = 11  # where frames are dropped / repeated


@pytest.fixture(scope="module")
def clip():
    ref = synthetic_planes(N, 64, 48, "yuv420p")
    dist = synthetic_planes(N, 64, 48, "yuv420p", noise=0.03, seed=5)  # same content + coding-like noise
    return [f[0] for f in ref], [f[0] for f in dist]


def signatures(frames):
    return np.stack([luma_signature(y) for y in frames])


def test_luma_signature_is_block_mean():
    y = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 1024
    sig = luma_signature(y, bit_depth=10, size=(16, 12))
    assert sig.shape == (12, 16)
    expected = y.reshape(12, 4, 16, 4).mean(axis=(1, 3)) / 1023
    np.testing.assert_allclose(sig, expected, rtol=1e-6)
    assert signature_psnr(sig, sig) == 100.0
    assert signature_psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)


def test_clean_clip_left_as_is(clip):
    ref, dist = clip
    result = align_auto(signatures(ref), signatures(dist))
    assert result.is_identity
    np.testing.assert_array_equal(result.ref_index, np.arange(N))
    assert result.describe() == []
    assert detect_breaks([signature_psnr(a, b) for a, b in zip(signatures(ref), signatures(dist), strict=True)]) == []


def test_dropped_frame_repaired(clip):
    ref, dist = clip
    dropped = dist[:K] + dist[K + 1:]
    result = align_auto(signatures(ref), signatures(dropped))
    expected = list(range(K)) + list(range(K + 1, N))
    np.testing.assert_array_equal(result.ref_index, expected)
    assert result.dropped == [K] and result.repeated == []
    assert result.shifted == [(K, N - 1, 1)]
    assert any("dropped" in line for line in result.describe())


def test_duplicated_frame_repaired(clip):
    ref, dist = clip
    doubled = dist[: K + 1] + [dist[K]] + dist[K + 1:]
    result = align_auto(signatures(ref), signatures(doubled))
    expected = list(range(K + 1)) + [K] + list(range(K + 1, N))
    np.testing.assert_array_equal(result.ref_index, expected)
    assert result.repeated == [K + 1] and result.dropped == []
    assert result.shifted == [(K + 1, N + 1, -1)]


@pytest.mark.parametrize("offset", [1, 3])
def test_constant_offset_repaired(clip, offset):
    ref, dist = clip
    result = align_auto(signatures(ref), signatures(dist[offset:]))
    np.testing.assert_array_equal(result.ref_index, np.arange(offset, N))
    assert result.shifted == [(0, N - offset, offset)] and result.unpaired_head == offset
    assert result.dropped == [] and result.repeated == []


def test_static_content_does_not_invent_steps():
    rng = np.random.default_rng(0)
    still = rng.random((12, 9))
    ref = np.stack([still] * 10)
    dist = ref + rng.normal(0, 0.01, size=ref.shape)
    assert align_auto(ref, dist).is_identity


def test_detect_break_from_dropped_frame_explained_by_shift(clip):
    ref, dist = clip
    dropped = dist[:K] + dist[K + 1:]
    rs, ds = signatures(ref), signatures(dropped)
    # per-frame scores with the naive index pairing (--frames shortest): reference i vs distorted i
    scores = [signature_psnr(rs[i], ds[i]) for i in range(N - 1)]

    def score_pair(i, j):
        return signature_psnr(rs[i], ds[j]) if i < N and j < N - 1 else None

    breaks = detect_breaks(scores, score_pair=score_pair)
    assert len(breaks) == 1
    b = breaks[0]
    assert isinstance(b, Break) and b.start == K and b.end is None
    assert b.shift == -1 and b.explained and b.before - b.during > 3
    assert "missing" in b.describe()


def test_detect_break_ends_and_unexplained():
    scores = np.full(40, 45.0)
    scores[10:20] = 30.0  # a stretch of bad frames (e.g. a corrupt GOP)
    scores[30] = 20.0  # a single-frame dip is not a break
    breaks = detect_breaks(scores, score_pair=lambda i, j: 30.0 if 10 <= i < 20 else 45.0)
    assert [(b.start, b.end) for b in breaks] == [(10, 20)]
    assert breaks[0].shift is None and not breaks[0].explained
    assert breaks[0].before == 45.0 and breaks[0].during == 30.0
    inf_scores = np.full(10, np.inf)
    assert detect_breaks(inf_scores) == []
