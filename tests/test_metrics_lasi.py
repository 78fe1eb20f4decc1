"""LASI: the exact O(N k^2) evaluation against a brute-force O(N^2 k^2) implementation of the definition.

The brute force below follows the official JAX code (dsevero/Linear-Autoregressive-Similarity-Index,
``lasi/lasi.py``) step by step, in float64 NumPy: neighbourhoods by a stable argsort of masked L1
distances over every element, ``A_i`` and ``b_i`` as sums over every previous element, and ``pinv``
through an SVD with JAX's default cut-off.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from lpipscli.errors import MetricInputError
from lpipscli.metrics.lasi import causal_neighbourhood, lasi

TOLERANCES = {
    # float64 here and there; the spec asks <= 1e-4 relative (its float32 reference needs that much).
    "brute_force_rtol": 1e-6,
    # A wrong cut-off must move the value by far more than the tolerance above.
    "cutoff_effect_min_rtol": 1e-3,
    "identity_atol": 1e-12,
    "symmetry_atol": 1e-12,
    "batched_atol": 1e-12,
    # float64 sums of at most 9 terms with weights <= 1, relative to the largest entry
    "recursion_atol": 1e-14,
    # the certified Cholesky, rank-one and eigendecomposition paths against each other, on whole images
    "solver_paths_rtol": 1e-10,
    # per solution, relative to its largest component, against numpy.linalg.pinv(hermitian=True)
    "solver_rtol": 1e-9,
}

JAX_RTOL_K10 = 10 * 10 * 2.0**-23  # jnp.linalg.pinv default: 10 * max(m, n) * eps(float32)

# Interior stencils from the spec (METRICS.md section 5), as (dh, dw, dc) in neighbour order.
RGB_STENCILS = {
    0: [
        (-1, 0, 0),
        (0, -1, 0),
        (-2, 0, 0),
        (-1, -1, 0),
        (-1, 0, 1),
        (-1, 1, 0),
        (0, -2, 0),
        (0, -1, 1),
        (-3, 0, 0),
        (-2, -1, 0),
    ],
    1: [
        (-1, 0, 0),
        (0, -1, 0),
        (0, 0, -1),
        (-2, 0, 0),
        (-1, -1, 0),
        (-1, 0, -1),
        (-1, 0, 1),
        (-1, 1, 0),
        (0, -2, 0),
        (0, -1, -1),
    ],
    2: [
        (-1, 0, 0),
        (0, -1, 0),
        (0, 0, -1),
        (-2, 0, 0),
        (-1, -1, 0),
        (-1, 0, -1),
        (-1, 1, 0),
        (0, -2, 0),
        (0, -1, -1),
        (0, 0, -2),
    ],
}
GRAY_STENCIL = [(-1, 0), (0, -1), (-2, 0), (-1, -1), (-1, 1), (0, -2), (-3, 0), (-2, -1), (-2, 1), (-1, -2)]

# the package re-exports the function `lasi`, which shadows the submodule attribute
lasi_module = importlib.import_module("lpipscli.metrics.lasi")


# --------------------------------------------------------------------------- brute force (definition)
def _brute_neighbourhood(shape: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official ``compute_all_l1_mask_idxs``: per element, stable argsort of L1 distances to the earlier ones."""
    n = int(np.prod(shape))
    coords = np.stack(np.unravel_index(np.arange(n), shape), axis=-1)
    l1 = np.abs(coords[:, None, :] - coords[None, :, :]).sum(-1)
    earlier = np.arange(n)[None, :] < np.arange(n)[:, None]
    masked = np.where(earlier, l1.astype(float), np.inf)
    order = np.argsort(masked, axis=1, kind="stable")[:, :k]
    found = np.take_along_axis(masked, order, axis=1) < np.inf
    return order, found, coords


def _brute_embeddings(img: np.ndarray, k: int = 10, coef: float = 1.0, rtol: float = JAX_RTOL_K10) -> np.ndarray:
    """``(N, k)`` unit embeddings of an ``(H, W, C)`` or ``(H, W)`` float image on [0, 255]."""
    n = img.size
    order, found, coords = _brute_neighbourhood(img.shape, k)
    flat = img.reshape(-1)
    neigh = np.where(found, flat[order], 0.0)  # missing neighbours are 0
    outer = neigh[:, :, None] * neigh[:, None, :]
    target = flat[:, None] * neigh
    l1 = np.abs(coords[:, None, :] - coords[None, :, :]).sum(-1)
    earlier = np.arange(n)[None, :] < np.arange(n)[:, None]
    weights = np.where(earlier, 0.8**l1, 0.0)
    mats = np.einsum("ij,jab->iab", weights, outer) + coef * 80 / 127.5 * np.eye(k)
    rhs = weights @ target
    u, s, vh = np.linalg.svd(mats)
    s_inv = np.where(s > rtol * s[:, :1], 1.0 / s, 0.0)
    params = np.einsum("iab,ia->ib", vh, s_inv * np.einsum("ija,ij->ia", u, rhs)) + 1e-6
    return params / np.linalg.norm(params, axis=1, keepdims=True)


def _brute_lasi(x: np.ndarray, y: np.ndarray, **kwargs) -> float:
    return float(np.linalg.norm(_brute_embeddings(x, **kwargs) - _brute_embeddings(y, **kwargs), axis=1).mean())


# --------------------------------------------------------------------------- inputs
def _smooth_noise(height: int, width: int, channels: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """Seeded ``(H, W, C)`` image in [0, 1]: a smooth pattern plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, size=2)
    base = 0.5 + 0.25 * np.sin(xx / 3.0 + phase[0]) * np.cos(yy / 4.0 + phase[1])
    img = base[..., None] * np.linspace(1.0, 0.8, channels) + noise * rng.standard_normal((height, width, channels))
    return np.clip(img, 0.0, 1.0)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` -> ``(1, C, H, W)`` float64."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _brute_on_unit(img: np.ndarray, **kwargs) -> np.ndarray:
    """The brute force on the [0, 255] scale; gray images as 2-D arrays, as the official code takes them."""
    scaled = img * 255.0
    return scaled[..., 0] if img.shape[-1] == 1 else scaled


# --------------------------------------------------------------------------- neighbourhoods
@pytest.mark.parametrize("channel", [0, 1, 2])
def test_interior_rgb_stencil_matches_spec(channel):
    offsets, found = causal_neighbourhood(12, 12, 3, 10)
    assert found[6, 6, channel].all()
    assert [tuple(o) for o in offsets[6, 6, channel].tolist()] == RGB_STENCILS[channel]


def test_interior_gray_stencil_matches_spec():
    offsets, found = causal_neighbourhood(12, 12, 1, 10)
    assert found[6, 6, 0].all()
    assert [tuple(o[:2]) for o in offsets[6, 6, 0].tolist()] == GRAY_STENCIL
    assert (offsets[..., 2] == 0).all()


@pytest.mark.parametrize(
    ("height", "width", "channels", "k"),
    [
        (6, 7, 3, 10),
        (13, 12, 1, 10),
        (2, 7, 1, 10),
        (14, 1, 1, 10),
        (1, 12, 1, 10),
        (3, 4, 3, 10),
        (4, 5, 3, 3),
        (6, 6, 1, 20),
    ],
)
def test_neighbourhood_matches_brute_force_everywhere(height, width, channels, k):
    offsets, found = causal_neighbourhood(height, width, channels, k)
    order, want_found, coords = _brute_neighbourhood((height, width, channels), k)
    want_offsets = coords[order] - coords[:, None, :]
    got_found = found.reshape(-1, k).numpy()
    np.testing.assert_array_equal(got_found, want_found)
    got = offsets.reshape(-1, k, 3).numpy()
    keep = want_found[..., None]
    np.testing.assert_array_equal(np.where(keep, got, 0), np.where(keep, want_offsets, 0))


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("height", "width", "channels"),
    [(8, 8, 3), (12, 9, 1), (16, 16, 3), (5, 13, 3), (2, 9, 1)],
)
def test_matches_brute_force(height, width, channels):
    x = _smooth_noise(height, width, channels, seed=1)
    y = _smooth_noise(height, width, channels, seed=2)
    want = _brute_lasi(_brute_on_unit(x), _brute_on_unit(y))
    got = lasi(_to_tensor(x), _to_tensor(y))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize(("height", "width", "channels"), [(9, 11, 3), (10, 7, 1)])
def test_matches_brute_force_across_blocks(monkeypatch, height, width, channels):
    """Tiny row blocks, chunks of 3 columns (the width padded) and runs of 2 chunks: every carry must be exact."""
    monkeypatch.setattr(lasi_module, "_ROW_BLOCK_ELEMENTS", {"cpu": 2 * width * channels, "cuda": 1})
    monkeypatch.setattr(lasi_module, "_CHUNK", 3)
    monkeypatch.setattr(lasi_module, "_SEGMENT", 2)
    x = _smooth_noise(height, width, channels, seed=3)
    y = _smooth_noise(height, width, channels, seed=4)
    want = _brute_lasi(_brute_on_unit(x), _brute_on_unit(y))
    assert lasi(_to_tensor(x), _to_tensor(y)).item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize("chunk", [1, 2, 4, 5, 12])
def test_any_chunk_width_matches_brute_force(monkeypatch, chunk):
    """The row is cut into chunks of ``chunk`` columns (padded up to 12, the width of the image is 9)."""
    monkeypatch.setattr(lasi_module, "_CHUNK", chunk)
    x = _smooth_noise(6, 9, 3, seed=11)
    y = _smooth_noise(6, 9, 3, seed=12)
    want = _brute_lasi(_brute_on_unit(x), _brute_on_unit(y))
    assert lasi(_to_tensor(x), _to_tensor(y)).item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 3, 4, 9])
def test_chunk_recursion_is_the_weighted_sum(monkeypatch, reverse, length):
    """Runs of 4 entries chained by a carry: the sum over the earlier (later) entries, written out."""
    monkeypatch.setattr(lasi_module, "_SEGMENT", 4)
    x = np.random.default_rng(length).uniform(-1e4, 1e4, (2, 3, length))
    skip = 0.8**4
    want = np.zeros_like(x)
    for q in range(length):
        for other in range(length):
            if (other > q) if reverse else (other < q):
                want[..., q] += skip ** (abs(q - other) - 1) * x[..., other]
    got = lasi_module._chunk_recursion(torch.from_numpy(x), skip, reverse=reverse).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCES["recursion_atol"] * np.abs(x).max())


def _blocky(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """Seeded 8-bit image of flat 4x4 blocks (JPEG-like), in [0, 1]."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(40, 220, size=(height // 4 + 1, width // 4 + 1, channels))
    return np.repeat(np.repeat(levels, 4, axis=0), 4, axis=1)[:height, :width].astype(float) / 255.0


@pytest.mark.parametrize("certify", [True, False])
def test_pinv_cutoff_is_jax_default(monkeypatch, certify):
    """Flat blocks put small singular values below the cut-off: only JAX's cut-off matches.

    ``certify=False`` sends every matrix through the eigendecomposition instead of the Cholesky path.
    """
    if not certify:
        monkeypatch.setattr(lasi_module, "_CERTIFY_MARGIN", float("inf"))
    x, y = _blocky(12, 12, 3, seed=3), _blocky(12, 12, 3, seed=4)
    got = lasi(_to_tensor(x), _to_tensor(y)).item()
    want = _brute_lasi(x * 255.0, y * 255.0)
    for other_rtol in (1e-15, 10 * 2.0**-23):  # no cut-off; torch.linalg.pinv's float32 default
        other = _brute_lasi(x * 255.0, y * 255.0, rtol=other_rtol)
        assert abs(other - want) > TOLERANCES["cutoff_effect_min_rtol"] * want  # the case is sensitive
    assert got == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize("certify", [True, False])
def test_both_solvers_match_on_noisy_images(monkeypatch, certify):
    if not certify:
        monkeypatch.setattr(lasi_module, "_CERTIFY_MARGIN", float("inf"))
    x = _smooth_noise(9, 8, 3, seed=21)
    y = _smooth_noise(9, 8, 3, seed=22)
    want = _brute_lasi(x * 255.0, y * 255.0)
    assert lasi(_to_tensor(x), _to_tensor(y)).item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


def test_settings_are_passed_through():
    x = _smooth_noise(7, 6, 3, seed=7)
    y = _smooth_noise(7, 6, 3, seed=8)
    want = _brute_lasi(_brute_on_unit(x), _brute_on_unit(y), k=4, coef=2.5, rtol=10 * 4 * 2.0**-23)
    got = lasi(_to_tensor(x), _to_tensor(y), k=4, ols_regularization_coef=2.5)
    assert got.item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


# --------------------------------------------------------------------------- properties
def test_identity_is_zero():
    x = _to_tensor(_smooth_noise(10, 12, 3, seed=9)).float()
    got = lasi(x, x.clone())
    assert got.shape == (1,)
    assert got.item() == pytest.approx(0.0, abs=TOLERANCES["identity_atol"])


def test_symmetric():
    x = _to_tensor(_smooth_noise(9, 10, 3, seed=10))
    y = _to_tensor(_smooth_noise(9, 10, 3, seed=11))
    assert lasi(x, y).item() == pytest.approx(lasi(y, x).item(), abs=TOLERANCES["symmetry_atol"])
    assert lasi(x, y).item() > 0.01


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_equals_one_by_one(channels):
    refs = torch.cat([_to_tensor(_smooth_noise(11, 10, channels, seed=s)) for s in (12, 13, 14)])
    dists = torch.cat([_to_tensor(_smooth_noise(11, 10, channels, seed=s)) for s in (15, 16, 17)])
    batched = lasi(refs, dists)
    assert batched.shape == (3,)
    single = torch.cat([lasi(refs[i : i + 1], dists[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=0.0, atol=TOLERANCES["batched_atol"])


def test_batch_of_one_keeps_shape_and_dtype():
    x = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    got = lasi(x, y)
    assert got.shape == (1,)
    assert got.dtype == torch.float32
    assert lasi(x.double(), y.double()).dtype == torch.float64


@pytest.mark.parametrize(("shape", "k"), [((1, 1, 3, 3), 10), ((1, 1, 2, 5), 10), ((1, 3, 1, 1), 3)])
def test_too_few_elements_raises(shape, k):
    x = torch.rand(shape)
    with pytest.raises(MetricInputError, match=r"lasi.*more than k="):
        lasi(x, x, k=k)


def test_smallest_accepted_sizes():
    gray = torch.rand(1, 1, 1, 11, generator=torch.Generator().manual_seed(2))  # 11 > k = 10 elements
    rgb = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(3))  # 12 elements
    assert torch.isfinite(lasi(gray, gray.flip(-1))).all()
    assert torch.isfinite(lasi(rgb, rgb.flip(-1))).all()


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_raises(k):
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(MetricInputError, match="k must be"):
        lasi(x, x, k=k)


def test_rejects_bad_pairs():
    with pytest.raises(MetricInputError):
        lasi(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(MetricInputError):
        lasi(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_solver_threads_do_not_change_values(monkeypatch, threads):
    """The batched solves run in slices on several threads: bit-identical to one thread."""
    x = _to_tensor(_blocky(12, 10, 3, seed=5))  # some matrices go through the eigendecomposition too
    y = _to_tensor(_smooth_noise(12, 10, 3, seed=6))
    want = lasi(x, y)
    monkeypatch.setattr(lasi_module, "_MIN_SOLVE_SLICE", 7)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        got = lasi(x, y)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(got, want)
    assert got.item() == pytest.approx(_brute_lasi(_brute_on_unit(_blocky(12, 10, 3, seed=5)),
                                                   _brute_on_unit(_smooth_noise(12, 10, 3, seed=6))),
                                       rel=TOLERANCES["brute_force_rtol"])


# --------------------------------------------------------------------------- flat content: the cut-off drops values
# In uniform and smooth 8-bit regions most A_i have eigenvalues under the pinv cut-off: these tests run the
# solver paths for them (rank-one power iteration with its proof, eigendecomposition) against the brute force.
def _constant(height: int, width: int, channels: int, level: int) -> np.ndarray:
    return np.full((height, width, channels), level / 255.0)


def _two_level(height: int, width: int, channels: int, low: int = 60, high: int = 200) -> np.ndarray:
    img = np.full((height, width, channels), low / 255.0)
    img[:, width // 2 :] = high / 255.0
    return img


def _flat_and_texture(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """Top half one 8-bit level, bottom half smooth pattern plus noise."""
    img = np.full((height, width, channels), 120 / 255.0)
    img[height // 2 :] = _smooth_noise(height - height // 2, width, channels, seed)
    return img


def _eight_bit(img: np.ndarray) -> np.ndarray:
    return np.round(img * 255.0) / 255.0


FLAT_PAIRS = {
    "constant vs constant": lambda: (_constant(24, 24, 3, 100), _constant(24, 24, 3, 180)),
    "constant vs two-level": lambda: (_constant(24, 24, 3, 100), _two_level(24, 24, 3)),
    "two-level vs noise": lambda: (_two_level(24, 24, 3), _smooth_noise(24, 24, 3, seed=31)),
    "flat region + texture": lambda: (_flat_and_texture(24, 24, 3, seed=32), _flat_and_texture(24, 24, 3, seed=33)),
    "8-bit smooth": lambda: (_eight_bit(_smooth_noise(24, 24, 3, seed=34, noise=0.0)),
                             _eight_bit(_smooth_noise(24, 24, 3, seed=35, noise=0.0))),
    "gray constant vs two-level": lambda: (_constant(32, 32, 1, 90), _two_level(32, 32, 1)),
}


@pytest.mark.parametrize("case", FLAT_PAIRS)
def test_flat_content_matches_brute_force(case):
    x, y = FLAT_PAIRS[case]()
    want = _brute_lasi(_brute_on_unit(x), _brute_on_unit(y))
    assert lasi(_to_tensor(x), _to_tensor(y)).item() == pytest.approx(want, rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize("case", ["constant vs constant", "gray constant vs two-level"])
def test_flat_content_depends_on_the_cutoff(case):
    """On uniform content the cut-off decides the value: the brute-force comparison above is sensitive."""
    x, y = (_brute_on_unit(img) for img in FLAT_PAIRS[case]())
    want = _brute_lasi(x, y)
    for other_rtol in (1e-15, 10 * 2.0**-23):
        assert abs(_brute_lasi(x, y, rtol=other_rtol) - want) > TOLERANCES["cutoff_effect_min_rtol"] * want


def _spy(monkeypatch, name: str) -> list[int]:
    """Record how many matrices each call of a solver path settles."""
    settled: list[int] = []
    real = getattr(lasi_module, name)

    def spy(*args):
        result = real(*args)
        settled.append(int(result[1].sum()) if isinstance(result, tuple) else result.shape[0])
        return result

    monkeypatch.setattr(lasi_module, name, spy)
    return settled


def test_uniform_regions_take_the_rank_one_path(monkeypatch):
    rank_one = _spy(monkeypatch, "_rank_one_solve")
    x, y = FLAT_PAIRS["gray constant vs two-level"]()
    got = lasi(_to_tensor(x), _to_tensor(y)).item()
    assert sum(rank_one) > 100
    assert got == pytest.approx(_brute_lasi(_brute_on_unit(x), _brute_on_unit(y)), rel=TOLERANCES["brute_force_rtol"])


@pytest.mark.parametrize("case", ["constant vs two-level", "8-bit smooth", "flat region + texture"])
def test_fast_paths_equal_the_eigendecomposition(monkeypatch, case):
    """Every matrix through the eigendecomposition (no certificate, no rank-one proof) gives the same value."""
    x, y = (_to_tensor(img) for img in FLAT_PAIRS[case]())
    fast = lasi(x, y).item()
    monkeypatch.setattr(lasi_module, "_CERTIFY_MARGIN", float("inf"))
    eigh = _spy(monkeypatch, "_pinv_solve")
    slow = lasi(x, y).item()
    assert sum(eigh) == x.numel() + y.numel()
    assert fast == pytest.approx(slow, rel=TOLERANCES["solver_paths_rtol"])


def _packed_system(eigenvalues: np.ndarray, seed: int, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(M, k)`` eigenvalues -> symmetric ``A = V diag V^T``, its packed form (``A - lam I``, upper triangle
    row by row, then ``b``) laid out one row per feature, and ``b``."""
    rng = np.random.default_rng(seed)
    count, k = eigenvalues.shape
    basis, _ = np.linalg.qr(rng.standard_normal((count, k, k)))
    mats = np.einsum("mab,mb,mcb->mac", basis, eigenvalues, basis)
    mats = (mats + mats.transpose(0, 2, 1)) / 2
    rhs = 1e4 * rng.standard_normal((count, k))
    iu = np.triu_indices(k)
    packed = np.concatenate([(mats - lam * np.eye(k))[:, iu[0], iu[1]], rhs], axis=1).T.copy()
    return mats, packed, rhs


SPECTRA = {
    # the solver path that must settle them, and the eigenvalues of 200 matrices: 1e7 on top, so the cut-off is
    # tau = 1e7 * JAX_RTOL_K10 ~ 119.2; the lowest is the ridge, 0.63
    "all kept": ("_pinv_solve", lambda rng, m: np.geomspace(1e7, 500.0, 10) * rng.uniform(0.9, 1.1, (m, 10))),
    "only the top kept": (
        "_rank_one_solve",
        lambda rng, m: np.concatenate([np.full((m, 1), 1e7), rng.uniform(0.63, 60.0, (m, 9))], axis=1),
    ),
    "some dropped": (
        "_pinv_solve",
        lambda rng, m: np.concatenate([np.geomspace(1e7, 300.0, 6)[None].repeat(m, 0),
                                       rng.uniform(0.63, 100.0, (m, 4))], axis=1),
    ),
    "close to the cut-off on both sides": (
        "_pinv_solve",
        lambda rng, m: np.concatenate(
            [np.full((m, 1), 1e7), 119.2 * np.array([3.0, 2.0, 1.6, 1.3, 1.1, 0.9, 0.7, 0.5, 0.3]) * rng.uniform(
                0.99, 1.01, (m, 9))], axis=1),
    ),
}


@pytest.mark.parametrize("spectrum", SPECTRA)
def test_solver_matches_numpy_pinv(monkeypatch, spectrum):
    """The vectorised solver against ``numpy.linalg.pinv(hermitian=True)`` with JAX's cut-off, per matrix."""
    path, make = SPECTRA[spectrum]
    lam = 80.0 / 127.5
    mats, packed, rhs = _packed_system(make(np.random.default_rng(40), 200), seed=41, lam=lam)
    settled = _spy(monkeypatch, path)
    got = lasi_module._pinv_solve_packed(torch.from_numpy(packed), 10, lam, JAX_RTOL_K10).numpy().T
    want = np.einsum("mab,mb->ma", np.linalg.pinv(mats, rcond=JAX_RTOL_K10, hermitian=True), rhs)
    if spectrum == "all kept":
        assert settled == []  # every matrix certified: no eigendecomposition
    else:
        assert sum(settled) > 0
    if spectrum == "only the top kept":
        assert sum(settled) == len(mats)
    error = np.abs(got - want).max(axis=1) / np.abs(want).max(axis=1)
    assert error.max() <= TOLERANCES["solver_rtol"]
