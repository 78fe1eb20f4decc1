"""``yuv_to_rgb`` is bit-identical to its definition, the plain NumPy float32 conversion.

The reference (:func:`lpipscli.testing.reference_yuv_to_rgb`) is the NumPy code ``yuv_to_rgb`` had before it
was rewritten with OpenCV strips and look-up tables; it *is* the definition (scores computed on RGB must not
change). 8-bit output depends on a pixel's (Y, U, V) triple alone, so every one of the 256^3 triples is
checked, laid out as 4:4:4 and as 4:2:0 planes, for every matrix and range. Higher bit depths: a large random
sample plus the range limits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lpipscli.io.av_video import yuv_to_rgb
from lpipscli.testing import REFERENCE_MATRICES, reference_yuv_to_rgb

COMBOS = list(itertools.product(REFERENCE_MATRICES, ("limited", "full")))


def check(planes, bit_depth, colorspace, color_range):
    ours = yuv_to_rgb(planes, bit_depth=bit_depth, colorspace=colorspace, color_range=color_range)
    want = reference_yuv_to_rgb(planes, bit_depth=bit_depth, colorspace=colorspace, color_range=color_range)
    assert ours.dtype == want.dtype and ours.shape == want.shape
    assert ours.transpose(2, 0, 1).flags.c_contiguous  # channel-planar memory
    assert_same(ours, want)


def assert_same(ours, want):
    """Bit-identical (``np.testing.assert_array_equal`` takes seconds on 50M samples; this, milliseconds)."""
    if not np.array_equal(ours, want):
        bad = np.argwhere(ours != want)
        pixel = tuple(bad[0][:2])
        raise AssertionError(f"{len(bad)} samples differ, first at {pixel}: {ours[pixel]} vs {want[pixel]}")


@pytest.fixture(scope="module")
def every_triple():
    """Both layouts of every 8-bit triple, built once for the module."""
    return every_triple_444(), every_triple_420()


def every_triple_444():
    """4096x4096 planes holding each (Y, U, V) once, at flat index ``V << 16 | U << 8 | Y``."""
    index = np.arange(1 << 24, dtype=np.uint32).reshape(4096, 4096)
    return [(index & 255).astype(np.uint8), (index >> 8 & 255).astype(np.uint8), (index >> 16).astype(np.uint8)]


def every_triple_420():
    """4:2:0 planes holding each (Y, U, V) once (each chroma sample's 2x2 luma block takes 4 of the 256 Y),
    and each pixel's flat index ``V << 16 | U << 8 | Y`` into the 4:4:4 layout."""
    chroma = np.arange(1 << 22, dtype=np.uint32).reshape(2048, 2048)  # 64 chroma samples per (U, V) pair
    pair, quad = chroma >> 6, (chroma & 63) * 4
    luma = np.empty((4096, 4096), dtype=np.uint8)
    for a, b in itertools.product(range(2), range(2)):
        luma[a::2, b::2] = quad + 2 * a + b
    pair_full = np.repeat(np.repeat(pair, 2, axis=0), 2, axis=1)
    index = (pair_full >> 8) << 16 | (pair_full & 255) << 8 | luma
    return [luma, (pair & 255).astype(np.uint8), (pair >> 8).astype(np.uint8)], index


@pytest.mark.parametrize(("colorspace", "color_range"), COMBOS)
def test_8bit_every_triple(every_triple, colorspace, color_range):
    """All 256^3 triples in 4:4:4 (against the reference) and in 4:2:0 (against the reference's value for
    each pixel's triple: the output of a pixel depends on its triple alone)."""
    planes, (planes_420, index) = every_triple
    kwargs = {"bit_depth": 8, "colorspace": colorspace, "color_range": color_range}
    want = np.concatenate([reference_yuv_to_rgb([p[rows:rows + 1024] for p in planes], **kwargs)
                           for rows in range(0, 4096, 1024)])  # rows are independent; in parts to save memory
    ours = yuv_to_rgb(planes, bit_depth=8, colorspace=colorspace, color_range=color_range)
    assert ours.dtype == np.uint8 and ours.transpose(2, 0, 1).flags.c_contiguous
    assert_same(ours, want)
    seen = np.zeros(1 << 24, dtype=bool)
    seen[index] = True
    assert seen.all()  # the 4:2:0 layout really holds every triple
    ours = yuv_to_rgb(planes_420, bit_depth=8, colorspace=colorspace, color_range=color_range)
    assert_same(ours, want.reshape(-1, 3)[index])


def samples(rng, bits, shape):
    """Uniform samples with the extremes and the limited-range limits mixed in (a quarter of them)."""
    s = 1 << (bits - 8)
    special = np.array([0, 1, 16 * s - 1, 16 * s, 128 * s, 235 * s, 240 * s, 240 * s + 1, (1 << bits) - 1])
    out = rng.integers(0, 1 << bits, size=shape)
    mask = rng.random(shape) < 0.25
    out[mask] = rng.choice(special, size=int(mask.sum()))
    return out.astype(np.uint8 if bits == 8 else np.uint16)


@pytest.mark.parametrize(("colorspace", "color_range"), COMBOS)
def test_10bit_sample_and_limits(colorspace, color_range):
    rng = np.random.default_rng(10)
    # 1.5M luma samples in 4:2:0 (odd size: 3 strips, the last of one row), then every limit triple
    planes = [samples(rng, 10, (1089, 1365)), samples(rng, 10, (545, 683)), samples(rng, 10, (545, 683))]
    check(planes, 10, colorspace, color_range)
    limits = np.array([0, 1, 63, 64, 512, 940, 960, 961, 1022, 1023], dtype=np.uint16)
    grid = np.stack(np.meshgrid(limits, limits, limits, indexing="ij")).reshape(3, 1, -1)
    check(list(grid), 10, colorspace, color_range)


@pytest.mark.parametrize("bits", [8, 9, 10, 12, 16])
@pytest.mark.parametrize(("sy", "sx"), [(1, 1), (2, 2), (1, 2), (2, 1), (1, 4), (4, 1), (3, 3)])
def test_every_subsampling_and_odd_size(bits, sy, sx):
    rng = np.random.default_rng(bits * 100 + sy * 10 + sx)
    for height, width in [(1, 1), (2, 1), (3, 1), (4, 1), (1, 4), (5, 3), (67, 45), (130, 97), (129, 64)]:
        ch, cw = -(-height // sy), -(-width // sx)
        planes = [samples(rng, bits, (height, width)), samples(rng, bits, (ch, cw)), samples(rng, bits, (ch, cw))]
        for colorspace, color_range in COMBOS:
            check(planes, bits, colorspace, color_range)


def test_strided_and_odd_typed_planes():
    """Planes that are views (row padding, every other column), 8-bit values held in uint16, extreme
    subsampling."""
    rng = np.random.default_rng(3)
    big = [samples(rng, 8, (80, 200)), samples(rng, 8, (40, 100)), samples(rng, 8, (40, 100))]
    views = [big[0][:75, :150], big[1][:38, :75], big[2][:38, :75]]  # padded rows, like decoder line sizes
    check(views, 8, "bt709", "limited")
    every_other = [big[0][:, ::2], big[1][:, ::2], big[2][:, ::2]]  # 4:2:0 of a 100-wide frame
    check(every_other, 8, "bt601", "full")
    check([p.astype(np.uint16) for p in big], 8, "bt2020", "limited")
    for bits in (8, 10):  # one chroma sample for a whole row (fx = 600) or column (fy = 70)
        check([samples(rng, bits, (3, 600)), samples(rng, bits, (3, 1)), samples(rng, bits, (3, 1))], bits,
              "bt709", "limited")
        check([samples(rng, bits, (70, 5)), samples(rng, bits, (1, 5)), samples(rng, bits, (1, 5))], bits,
              "bt601", "full")
    ten = [samples(rng, 10, (70, 90)), samples(rng, 10, (35, 45)), samples(rng, 10, (35, 45))]
    check([p[:, :89] for p in ten[:1]] + [p[:, :45] for p in ten[1:]], 10, "bt709", "full")
