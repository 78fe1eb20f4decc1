"""LASI, the Linear Autoregressive Similarity Index (Severo, Theis, Balle, ICLR 2024), evaluated exactly.

Every element ``i`` of an image (raster order, channel index fastest) gets a weighted least-squares
predictor ``p_i`` from its ``k`` nearest causal neighbours, fitted on *all* previous elements of the
image with weights ``0.8 ** L1(i, j)``; the embedding is ``p_i`` made unit length, and LASI is the mean
distance between the embeddings of the two images.

The official code materialises every ``(i, j)`` pair (``O(N**2 k**2)`` memory: out of memory at 64x64
RGB). Here the weight factorises as ``0.8**|dh| * 0.8**|dw| * 0.8**|dc|`` and the set of previous
elements is ``{h' < h} + {h' = h, w' < w} + {h' = h, w' = w, c' < c}``, so every sum is a chain of
first-order recursions along channels, columns and rows: ``O(N k**2)`` time, computed in float64 with
non-negative weights only (small matrix products inside chunks of a few columns, recursions between
chunks and between rows), in blocks of rows so that the working memory stays bounded. The result is the
same quantity, not an approximation. The ``k x k`` pseudo-inverses then take the cheapest proven path
(:func:`_pinv_solve_packed`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from lpipscli.errors import MetricInputError
from lpipscli.metrics._checks import check_pair

__all__ = ["causal_neighbourhood", "lasi"]

_NAME = "lasi"
#: Weight decay per unit of L1 distance, hard-coded in the official code.
_OMEGA = 0.8
#: float32 machine epsilon: JAX's default pinv cut-off is ``10 * max(m, n) * eps`` of float32 inputs.
_EPS_F32 = 2.0**-23
#: LASI is defined on the [0, 255] scale (the regulariser is fixed, the pinv cut-off relative).
_SCALE = 255.0
#: Offset added to every parameter before normalisation (official ``compute_distance``).
_PARAM_OFFSET = 1e-6
#: Safety factor on the certificate that no singular value falls below the pinv cut-off.
_CERTIFY_MARGIN = 1.001
#: Power iterations in :func:`_rank_one_solve` (each gains a factor ~``rtol`` where it applies).
_POWER_STEPS = 4
#: Largest eigen-residual :func:`_rank_one_solve` accepts, in units of ``eps ||A||_F``.
_RESIDUAL_EPS = 64.0
#: Image elements (rows x W x C) per block of rows. The working set (about 70 float64 features per
#: element, a few arrays of them, for each image of the batch) then stays in cache on a CPU; on a GPU
#: larger blocks mean fewer kernel launches. Results do not depend on the batch composition.
_ROW_BLOCK_ELEMENTS = {"cpu": 1 << 14, "cuda": 1 << 16}
#: Longest run of chunks whose recursion is one matrix product (:func:`_chunk_recursion`).
_SEGMENT = 32
#: Columns per chunk of a row (:func:`_lasi_sums`) to choose from; ``_CHUNK`` (0: choose) forces one.
_CHUNK_SIZES = (4, 5, 6, 3)
_CHUNK = 0
#: Fewest matrices per thread in :func:`_pinv_solve` (below that, one thread).
_MIN_SOLVE_SLICE = 2048


def _candidate_offsets(k: int, channels: int, device: torch.device) -> Tensor:
    """All causal offsets within L1 distance ``k``, in neighbour order.

    The order is the official one: L1 distance first, then the flat index of the neighbour, which for
    in-range offsets is the lexicographic order of ``(dh, dw, dc)``. A predecessor at distance ``d``
    implies ``d`` predecessors at distances ``1..d`` (walk towards it first along the axis that makes it
    causal), so the ``k`` nearest predecessors always lie within distance ``k``.

    Returns:
        ``(M, 3)`` long tensor of ``(dh, dw, dc)``.
    """
    dh, dw, dc = torch.meshgrid(
        torch.arange(-k, 1, device=device),
        torch.arange(-k, k + 1, device=device),
        torch.arange(-(channels - 1), channels, device=device),
        indexing="ij",
    )
    dh, dw, dc = dh.reshape(-1), dw.reshape(-1), dc.reshape(-1)
    dist = -dh + dw.abs() + dc.abs()
    causal = (dh < 0) | ((dh == 0) & (dw < 0)) | ((dh == 0) & (dw == 0) & (dc < 0))
    keep = causal & (dist <= k)
    dh, dw, dc, dist = dh[keep], dw[keep], dc[keep], dist[keep]
    key = ((dist * (k + 1) + dh + k) * (2 * k + 1) + dw + k) * (2 * channels - 1) + dc + channels - 1
    order = torch.argsort(key)
    return torch.stack([dh, dw, dc], dim=-1)[order]


def _stencil_tables(
    height: int, width: int, channels: int, k: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Neighbourhoods per border class: the set only depends on ``min(h, k)``, on the distances to the
    left and right borders clipped at ``k``, and on the channel.

    Returns:
        ``row_class (H,)``, ``col_class (W,)``, ``offsets (R, Q, C, k, 3)`` as ``(dh, dw, dc)`` (zero
        where missing) and ``found (R, Q, C, k)`` (False where the neighbour does not exist).
    """
    cand = _candidate_offsets(k, channels, device)
    dh, dw, dc = cand.unbind(-1)
    rows = torch.arange(min(height, k + 1), device=device)
    w = torch.arange(width, device=device)
    col_key = torch.stack([w.clamp(max=k), (width - 1 - w).clamp(max=k)], dim=-1)
    col_values, col_class = torch.unique(col_key, dim=0, return_inverse=True)
    c = torch.arange(channels, device=device)
    ok_h = dh[None, :] >= -rows[:, None]
    ok_w = (dw[None, :] >= -col_values[:, :1]) & (dw[None, :] <= col_values[:, 1:])
    ok_c = (c[:, None] + dc[None, :] >= 0) & (c[:, None] + dc[None, :] < channels)
    valid = ok_h[:, None, None, :] & ok_w[None, :, None, :] & ok_c[None, None, :, :]
    # First k existing candidates, in candidate order (a stable sort keeps that order).
    pick = torch.sort((~valid).to(torch.uint8), dim=-1, stable=True).indices[..., :k]
    found = valid.gather(-1, pick)
    offsets = cand[pick] * found[..., None]
    row_class = torch.arange(height, device=device).clamp(max=k)
    return row_class, col_class.reshape(-1), offsets, found


def causal_neighbourhood(
    height: int, width: int, channels: int, k: int = 10, *, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """The causal neighbourhood LASI uses for every element of an ``H x W x C`` image.

    The neighbours of element ``(h, w, c)`` are the ``k`` previous elements (raster order, channel
    fastest) nearest in L1 distance ``|dh| + |dw| + |dc|``, ties broken by the smaller flat index; near
    the borders the set is re-selected, and when fewer than ``k`` previous elements exist the list is
    padded with missing entries (value 0 in LASI).

    Args:
        height: image height ``H``.
        width: image width ``W``.
        channels: ``C`` (1 gray, 3 RGB).
        k: neighbourhood size.
        device: where to build the tables.

    Returns:
        ``offsets (H, W, C, k, 3)`` long, ``(dh, dw, dc)`` per neighbour in the official order (zero where
        missing), and ``found (H, W, C, k)`` bool.

    Matches:
        ``LASI.compute_all_l1_mask_idxs`` of dsevero/Linear-Autoregressive-Similarity-Index (stable
        argsort of masked L1 distances); a 2-D gray image is ``channels=1``.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    row_class, col_class, offsets, found = _stencil_tables(height, width, channels, k, device)
    index = (row_class[:, None], col_class[None, :])
    return offsets[index], found[index]


def _cholesky_soa(mat: Tensor) -> Tensor:
    """In place: the lower Cholesky factor of every ``k x k`` matrix of ``mat``, laid out ``(k, k, M)``.

    Vectorised over the ``M`` matrices (one elementwise operation per multiply-add of the algorithm,
    each over all matrices): the batched LAPACK calls loop over tiny matrices one by one. Only the
    lower triangle is read and written.

    Returns:
        ``(M,)`` bool: every pivot was positive (the matrix is numerically positive definite).
    """
    k = mat.shape[0]
    ok = torch.ones(mat.shape[-1], dtype=torch.bool, device=mat.device)
    for j in range(k):
        col = mat[j:, j]
        for t in range(j):
            col.addcmul_(mat[j:, t], mat[j, t], value=-1.0)
        pivot = col[0]
        ok &= pivot > 0
        pivot.clamp_(min=torch.finfo(mat.dtype).tiny).sqrt_()
        col[1:].div_(pivot)
    return ok


def _cholesky_solve_soa(chol: Tensor, rhs: Tensor) -> Tensor:
    """``(L L^T)^-1 rhs`` for the factors of :func:`_cholesky_soa`; ``rhs (k, M)``, returns ``(k, M)``."""
    k = chol.shape[0]
    out = rhs.clone()
    for i in range(k):
        for t in range(i):
            out[i].addcmul_(chol[i, t], out[t], value=-1.0)
        out[i].div_(chol[i, i])
    for i in reversed(range(k)):
        for t in range(i + 1, k):
            out[i].addcmul_(chol[t, i], out[t], value=-1.0)
        out[i].div_(chol[i, i])
    return out


def _triangle_positions(k: int, device: torch.device) -> Tensor:
    """``(k, k)`` long: row of entry ``(a, b)`` in the packed upper triangle (row by row), both halves."""
    ia, ib = torch.triu_indices(k, k, device=device)
    position = torch.empty(k, k, dtype=torch.long, device=device)
    position[ia, ib] = torch.arange(ia.numel(), device=device)
    position[ib, ia] = torch.arange(ia.numel(), device=device)
    return position


def _buffer(work: dict[str, Tensor] | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An uninitialised ``shape`` tensor (``like``'s dtype and device), kept in ``work`` for the next block.

    Blocks of rows need the same large arrays again and again; fresh ones cost a page fault per 4 KiB
    page (a third of the run time on a CPU), so the first block's are reused (grown when too small).
    """
    size = math.prod(shape)
    if work is None:
        return like.new_empty(shape)
    held = work.get(name)
    if held is None or held.numel() < size:
        held = work[name] = like.new_empty(size)
    return held[:size].view(shape)


def _lower_matrices(tri: Tensor, position: Tensor, diagonal: Tensor | float, *, out: Tensor | None = None) -> Tensor:
    """``(k, k, M)`` whose lower triangle is the packed ``tri (k(k+1)/2, M)`` plus ``diagonal`` on the
    diagonal (a scalar or ``(M,)``); the strict upper triangle is left unset (never read). Written into
    ``out`` when given."""
    k = position.shape[0]
    out = tri.new_empty(k, k, tri.shape[-1]) if out is None else out
    for i, row in enumerate(position.tolist()):
        for j in range(i + 1):
            out[i, j].copy_(tri[row[j]])
    diag = out.diagonal(dim1=0, dim2=1)
    diag += diagonal[:, None] if isinstance(diagonal, Tensor) else diagonal
    return out


def _pinv_solve_packed(
    packed: Tensor, k: int, lam: float, rtol: float, work: dict[str, Tensor] | None = None
) -> Tensor:
    """``pinv(A) @ b`` for every element, with JAX's cut-off: singular values ``<= rtol * s_max`` dropped.

    ``A = G + lam I`` is symmetric and its singular values are its ``|eigenvalues|``. Three paths, each
    proven per matrix, the cheaper first:

    1. When ``A - tau I`` with ``tau = rtol ||A||_F`` (times a 0.1 % margin) is positive definite,
       every eigenvalue exceeds ``rtol * s_max`` (``s_max <= ||A||_F``) and the pseudo-inverse is the
       inverse: a Cholesky factorisation of the shifted matrix proves it (the exact test of
       ``lambda_min > tau``, up to a backward error ~1e-15 ``||A||``, far inside the margin) and a
       second one of ``A`` solves. Both run vectorised over all matrices (textured content: nearly all).
    2. Where the cut-off keeps only the top eigenvalue (uniform gray regions, or equal channels):
       :func:`_rank_one_solve`.
    3. The rest (flat or smooth regions with several kept eigenvalues, or values near the cut-off):
       :func:`_pinv_solve` (eigendecomposition, ~10 us per matrix).

    Args:
        packed: ``(k(k+1)/2 + k, M)`` float64: the upper triangle of ``G`` (row by row), then ``b``.
        k: neighbourhood size.
        lam: ridge term added to the diagonal.
        rtol: relative cut-off.
        work: buffers kept between calls (see :func:`_buffer`).

    Returns:
        ``(k, M)``.
    """
    n_tri = k * (k + 1) // 2
    tri, rhs = packed[:n_tri], packed[n_tri:]
    position = _triangle_positions(k, packed.device)
    upper = torch.zeros_like(tri[0])  # ||A||_F, without copying rows
    for a, row in enumerate(position.tolist()):
        for b in range(a, k):
            entry = tri[row[b]] + lam if a == b else tri[row[b]]
            upper.addcmul_(entry, entry, value=1.0 if a == b else 2.0)
    upper.sqrt_()
    # one buffer for both factorisations: a fresh one costs page faults as large as the copy itself
    chol = _buffer(work, "chol", (k, k, tri.shape[-1]), tri)
    chol = _lower_matrices(tri, position, lam - (_CERTIFY_MARGIN * rtol) * upper, out=chol)
    certified = _cholesky_soa(chol)
    chol = _lower_matrices(tri, position, lam, out=chol)
    certified &= _cholesky_soa(chol)
    out = _cholesky_solve_soa(chol, rhs)
    del chol
    rest = (~certified).nonzero().squeeze(-1)
    if not rest.numel():
        return out
    if lam > 0 and k > 1:
        # Rank one kept needs trace(A) = lambda_1 + (the dropped ones) <= (1 + (k-1) rtol) lambda_1, and
        # lambda_1 <= ||A||_F: a free filter that leaves out the matrices with several kept eigenvalues.
        trace = _columns(tri[position.diagonal().tolist()], rest).sum(0).add_(k * lam)
        maybe = trace <= (1.0 + (k - 1) * rtol) * (1.0 + 1e-12) * upper[rest]
        if maybe.any():
            cand = rest[maybe]
            one, solved = _rank_one_solve(
                _columns(tri, cand), _columns(rhs, cand), position, lam, rtol, upper[cand], work
            )
            out[:, cand[solved]] = one[:, solved]
            rest = torch.cat([rest[~maybe], cand[~solved]])
    if rest.numel():
        rest_mat = _columns(tri, rest)[position.reshape(-1)].reshape(k, k, -1)
        rest_mat.diagonal(dim1=0, dim2=1).add_(lam)
        out[:, rest] = _pinv_solve(rest_mat.permute(2, 0, 1), _columns(rhs, rest).T, rtol).T
    return out


def _columns(x: Tensor, index: Tensor) -> Tensor:
    """``x[:, index]`` for a 2-D ``x`` (``gather`` is 2-3x faster than indexing along the second axis)."""
    return torch.gather(x, 1, index.expand(x.shape[0], -1))


def _dot_rows(x: Tensor, y: Tensor) -> Tensor:
    """``sum_i x[i] * y[i]`` over the first axis, as a chain of fused multiply-adds (a reduction over a
    short leading axis is several times slower in PyTorch)."""
    out = x[0] * y[0]
    for i in range(1, x.shape[0]):
        out.addcmul_(x[i], y[i])
    return out


def _rank_one_solve(
    tri: Tensor,
    rhs: Tensor,
    position: Tensor,
    lam: float,
    rtol: float,
    upper: Tensor,
    work: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """``pinv(A) @ b`` where the cut-off keeps only the largest eigenvalue, proven per matrix.

    Uniform gray regions (or regions with equal channels) give such matrices: every neighbourhood vector
    there is the same, so ``A`` is a rank-one Gram matrix plus the ridge, and the cut-off drops the rest.
    Power iteration from ``A 1`` gives a unit ``x`` and ``mu = x^T A x``; it converges at the rate
    ``lambda_2 / lambda_1 <= rtol`` (~1e-5) where this applies. The result ``x (x^T b) / mu`` is the
    truncated pseudo-inverse's when (``tau = rtol ||A||_F``, ``m`` the 0.1 % margin):

    * the residual ``rho = ||A x - mu x|| <= 64 eps ||A||_F`` (what a backward-stable eigensolver
      reaches), so an eigenvalue of ``A`` lies within ``rho`` of ``mu``;
    * ``mu > 2 m tau + rho``: that eigenvalue is kept;
    * ``E = A - mu x x^T`` has every eigenvalue under ``rtol mu / m <= rtol s_max / m``, proven by a
      Cholesky factorisation of ``rtol mu / m I - E``. ``A = E + mu x x^T`` is a positive rank-one
      update of ``E``, so ``lambda_2(A) <= lambda_1(E)``: every other eigenvalue is dropped.

    The gap between the two sides is then at least ``tau``, so ``x`` is the top eigenvector to ``rho /
    tau <= 64 eps / rtol`` (6e-10 for ``k = 10``; in practice ~1e-15). ``A`` must be positive definite
    (``|lambda| = lambda``): the caller checks ``lam > 0``.

    Args:
        tri: ``(k(k+1)/2, M)`` float64: the upper triangle of ``A - lam I`` (row by row), one row per entry.
        rhs: ``(k, M)``.
        position: :func:`_triangle_positions`.
        lam: ridge term on the diagonal.
        rtol: relative cut-off.
        upper: ``(M,)`` Frobenius norms of the matrices.
        work: buffers kept between calls (see :func:`_buffer`).

    Returns:
        ``(k, M)`` solutions and ``(M,)`` bool, True where every proof holds (elsewhere the value is
        meaningless).
    """
    k = rhs.shape[0]
    rows = position.tolist()

    def matvec(vec: Tensor) -> Tensor:
        out = torch.mul(vec, lam)
        for a in range(k):
            for b in range(k):
                out[a].addcmul_(tri[rows[a][b]], vec[b])
        return out

    vec = matvec(torch.ones_like(rhs))
    for _ in range(_POWER_STEPS):
        vec = matvec(vec / _dot_rows(vec, vec).sqrt_())
    vec = vec / _dot_rows(vec, vec).sqrt_()
    image = matvec(vec)
    top = _dot_rows(vec, image)
    image.sub_(top * vec)
    residual = _dot_rows(image, image).sqrt_()
    solved = residual <= _RESIDUAL_EPS * torch.finfo(tri.dtype).eps * upper
    solved &= top > 2 * _CERTIFY_MARGIN * rtol * upper + residual
    # lower triangle of rtol mu / m I - E = rtol mu / m I + mu x x^T - A
    bound = _buffer(work, "chol", (k, k, rhs.shape[1]), tri)
    scaled = vec * top
    shift = (rtol / _CERTIFY_MARGIN) * top - lam
    for a in range(k):
        for b in range(a + 1):
            torch.mul(vec[a], scaled[b], out=bound[a, b]).sub_(tri[rows[a][b]])
        bound[a, a].add_(shift)
    solved &= _cholesky_soa(bound)
    return vec * (_dot_rows(vec, rhs) / top), solved


def _pinv_solve(mat: Tensor, rhs: Tensor, rtol: float) -> Tensor:
    """:func:`_pinv_solve_serial` over ``torch.get_num_threads()`` threads on the CPU.

    PyTorch runs batched LAPACK calls (one tiny ``k x k`` factorisation per matrix) in a serial loop
    whatever its thread count; they release the GIL, so slices of the batch run in parallel here. Every
    matrix is solved on its own, so the result does not depend on the split.
    """
    workers = min(torch.get_num_threads(), mat.shape[0] // _MIN_SOLVE_SLICE)
    if mat.device.type != "cpu" or workers < 2:
        return _pinv_solve_serial(mat, rhs, rtol)
    bounds = [round(i * mat.shape[0] / workers) for i in range(workers + 1)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(
            lambda i: _pinv_solve_serial(mat[bounds[i]:bounds[i + 1]], rhs[bounds[i]:bounds[i + 1]], rtol),
            range(workers),
        )
        return torch.cat(list(parts))


def _pinv_solve_serial(mat: Tensor, rhs: Tensor, rtol: float) -> Tensor:
    """``pinv(mat) @ rhs`` for symmetric ``mat`` through its eigendecomposition, JAX's cut-off.

    ``pinv = V diag(1/lambda) V^T`` over the eigenvalues with ``|lambda| > rtol * max |lambda|``.

    Args:
        mat: ``(M, k, k)`` symmetric float64.
        rhs: ``(M, k)``.
        rtol: relative cut-off.

    Returns:
        ``(M, k)``.
    """
    evals, evecs = torch.linalg.eigh(mat)
    mag = evals.abs()
    keep = mag > rtol * mag.amax(dim=-1, keepdim=True)
    inv = torch.where(keep, evals.reciprocal(), torch.zeros_like(evals))
    coef = torch.einsum("mab,ma->mb", evecs, rhs) * inv
    return torch.einsum("mab,mb->ma", evecs, coef)


def _embed(packed: Tensor, k: int, lam: float, rtol: float, work: dict[str, Tensor] | None = None) -> Tensor:
    """Unit-norm LASI embeddings from the weighted sums.

    Args:
        packed: ``(k(k+1)/2 + k, M)``: upper triangle (row by row) of ``sum_j w_ij n_j n_j^T``, then
            ``sum_j w_ij x_j n_j``, one row per feature.
        k: neighbourhood size.
        lam: ridge term added to the diagonal.
        rtol: relative pinv cut-off.
        work: buffers kept between calls (see :func:`_buffer`).

    Returns:
        ``(k, M)``: ``e = (pinv(A) b + 1e-6) / ||pinv(A) b + 1e-6||``.
    """
    params = _pinv_solve_packed(packed, k, lam, rtol, work).add_(_PARAM_OFFSET)
    return params.div_(_dot_rows(params, params).sqrt_())


def lasi(ref: Tensor, dist: Tensor, *, k: int = 10, ols_regularization_coef: float = 1.0) -> Tensor:
    """Linear Autoregressive Similarity Index between two batches of images (exact evaluation).

    Both images are scaled to [0, 255] (the scale LASI is defined on). For every element ``i`` (raster
    order over ``(h, w, c)``, channel fastest): ``n_j`` = values of the ``k`` causal neighbours of ``j``
    (see :func:`causal_neighbourhood`; missing ones are 0), ``A_i = sum_{j<i} 0.8**L1(i,j) n_j n_j^T +
    lambda I`` with ``lambda = coef * 80 / 127.5``, ``b_i = sum_{j<i} 0.8**L1(i,j) x_j n_j`` over all
    previous elements of the image, ``p_i = pinv(A_i) b_i`` with JAX's cut-off (singular values
    ``<= 10 k 2**-23 s_max`` dropped), ``e_i = (p_i + 1e-6) / ||p_i + 1e-6||``, and
    ``LASI = mean_i ||e_i(ref) - e_i(dist)||`` over all ``H*W*C`` elements.

    Args:
        ref: ``(N, C, H, W)`` float tensor, values in ``[0, 1]``, ``C`` 1 (gray) or 3 (RGB).
        dist: same shape as ``ref``.
        k: neighbourhood size (pinned: 10, as in the official README and evaluation).
        ols_regularization_coef: scales the ridge term ``80 / 127.5`` (pinned: 1.0).

    Returns:
        ``(N,)`` tensor in ``ref``'s dtype; 0 for identical images, lower is more similar, at most 2.
        Computed in float64 without gradients (not usable as a training loss).

    Raises:
        MetricInputError: on invalid tensors, a bad ``k``, or images with ``H*W*C <= k`` elements.

    Matches:
        ``LASI(shape, neighborhood_size=10).compute_distance(x, y)`` of
        dsevero/Linear-Autoregressive-Similarity-Index (bcac40c) on float ``(H, W, C)`` arrays in
        [0, 255] (``(H, W)`` for gray); computed in float64 where the official code uses float32
        (differences of about 1e-6 to 1e-4 relative). Feed it float arrays: with uint8 input the
        official code overflows (the README's 1.3693 for the egg pair is that artefact; float gives
        0.2120).

    References:
        D. Severo, L. Theis, J. Balle, "The Unreasonable Effectiveness of Linear Prediction as a
        Perceptual Metric", ICLR 2024, https://openreview.net/forum?id=e4FG5PJ9uC
    """
    check_pair(ref, dist, name=_NAME)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MetricInputError(f"{_NAME}: k must be a positive integer, got {k!r}")
    coef = float(ols_regularization_coef)
    if not math.isfinite(coef):
        raise MetricInputError(f"{_NAME}: ols_regularization_coef must be finite, got {coef!r}")
    batch, channels, height, width = ref.shape
    numel = channels * height * width
    if numel <= k:
        raise MetricInputError(
            f"{_NAME} needs more than k={k} elements per image (H*W*C), got {width}x{height}x{channels} "
            f"= {numel}; minimum {k + 1}"
        )
    with torch.no_grad():
        total = _lasi_sums(ref, dist, k, coef)
    return (total / numel).to(ref.dtype)


def _chunk_width(width: int) -> int:
    """Columns per chunk: the size in ``_CHUNK_SIZES`` that pads the width least (the larger on ties); the
    width itself when it is narrower than all of them."""
    if width < min(_CHUNK_SIZES):
        return width
    return min(_CHUNK_SIZES, key=lambda size: (-(-width // size) * size, -size))


def _chunk_operators(channels: int, chunk: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The weights that map the features of one chunk (``C x b`` elements, row ``c * b + u``) to its sums.

    Rows of the result, each ``(C * b,)``, in this order:

    * ``before`` (``C * b``): weight ``0.8**L1`` of every element of the chunk that precedes the target in
      raster order (``u' < u``, or ``u' = u`` and ``c' < c``);
    * ``whole`` (``C * b``): weight ``0.8**L1`` of every element of the chunk;
    * ``ahead`` (``C``): weight ``0.8**(|c - c'| + b - u')``, the chunk seen from column ``b`` of channel ``c``;
    * ``behind`` (``C``): weight ``0.8**(|c - c'| + u' + 1)``, the chunk seen from column ``-1``.
    """
    c = torch.arange(channels, device=device).repeat_interleave(chunk)
    u = torch.arange(chunk, device=device).repeat(channels)
    dist = (c[:, None] - c[None, :]).abs() + (u[:, None] - u[None, :]).abs()
    whole = torch.pow(_OMEGA, dist.to(dtype))
    before = whole * ((u[None, :] < u[:, None]) | ((u[None, :] == u[:, None]) & (c[None, :] < c[:, None])))
    gap = (torch.arange(channels, device=device)[:, None] - c[None, :]).abs()
    ahead = torch.pow(_OMEGA, (gap + chunk - u[None, :]).to(dtype))
    behind = torch.pow(_OMEGA, (gap + u[None, :] + 1).to(dtype))
    return torch.cat([before, whole, ahead, behind])


def _chunk_recursion(x: Tensor, skip: float, *, reverse: bool) -> Tensor:
    """``y[..., q] = sum_{q' < q} skip**(q - 1 - q') x[..., q']`` (``q' > q``, ``skip**(q' - q - 1)`` when
    ``reverse``) along the last axis: products with the matrix of these weights over runs of at most
    ``_SEGMENT`` entries, chained by a carry. Non-negative weights at most 1: no rescaling, no cancellation."""
    length = x.shape[-1]
    out = x.new_empty(x.shape)
    carry = x.new_zeros(x.shape[:-1])
    starts = list(range(0, length, _SEGMENT))
    for start in reversed(starts) if reverse else starts:
        size = min(_SEGMENT, length - start)
        step = torch.arange(size, device=x.device, dtype=x.dtype)
        gap = step[:, None] - step[None, :] if reverse else step[None, :] - step[:, None]  # (i, j) -> i - j or j - i
        weights = torch.where(gap > 0, torch.pow(skip, (gap - 1).clamp(min=0)), 0.0)
        entry = torch.pow(skip, step.flip(0) if reverse else step)  # from the carry to entry j
        leave = torch.pow(skip, step if reverse else step.flip(0))  # from entry i to the next run's carry
        part = x[..., start : start + size]
        seg = torch.matmul(part, weights).addcmul_(carry[..., None], entry)
        out[..., start : start + size] = seg
        carry = torch.matmul(part, leave).add_(carry, alpha=skip**size)
    return out


def _lasi_sums(ref: Tensor, dist: Tensor, k: int, coef: float) -> Tensor:
    """Sum over all elements of ``||e_i(ref) - e_i(dist)||``, ``(N,)`` float64 (inputs already checked).

    The weighted sums of element ``(h, w, c)`` split into the rows above (``h' < h``, every column and
    channel), the earlier columns of its row, and the earlier channels of its pixel. Each row is cut into
    chunks of ``b`` columns (the width padded with elements whose features are 0, never counted):

    * inside a chunk, a product with a small matrix (:func:`_chunk_operators`; one product per feature
      for all chunks of a block) gives every element's sum over the chunk's earlier elements
      (``before``), over the whole chunk (``whole``), and the chunk's total as seen from the next and the
      previous chunk;
    * between chunks, first-order recursions along the row (decay ``0.8**b`` per chunk) carry those totals
      forward and backward, and ``0.8**u`` times them completes both sums of the element in column ``u``;
    * between rows, a first-order recursion (decay 0.8) carries the row totals down, across the blocks of
      rows.

    Every step is a sum of non-negative weights (at most 1) times the features, in float64, without the
    rescaling by ``0.8**-t`` of a cumulative sum: the rounding error stays a few ulps of ``sum_j w_ij |f_j|``
    (the features of images on [0, 255] are themselves non-negative). The features are laid out
    one row per feature (the layout of the batched solver) with the elements in the order ``(c, u, row,
    image, chunk)``: any order works as long as both images use the same one.
    """
    batch, channels, height, width = ref.shape
    numel = channels * height * width
    device = ref.device
    dtype = torch.float64
    omega = _OMEGA
    lam = coef * 80.0 / 127.5
    rtol = 10.0 * k * _EPS_F32
    n_images = 2 * batch
    chunk = _CHUNK if _CHUNK else _chunk_width(width)
    n_chunks = -(-width // chunk)
    padded = n_chunks * chunk
    cb = channels * chunk

    # (2N * (numel + 1),) on [0, 255], raster order (channel fastest) per image; the trailing 0 of each image
    # stands for the missing neighbours (and the padding).
    images = torch.cat([ref, dist]).to(dtype).mul(_SCALE).permute(0, 2, 3, 1).reshape(n_images, numel)
    flat_images = torch.cat([images, images.new_zeros(n_images, 1)], dim=1).reshape(-1)
    image_start = torch.arange(n_images, device=device) * (numel + 1)

    row_class, col_class, offsets, found = _stencil_tables(height, width, channels, k, device)
    strides = torch.tensor([width * channels, channels, 1], device=device)
    # (R, C, Q, k): flat offset of each neighbour, per border class; missing ones point at the 0.
    flat_delta = torch.where(found, (offsets * strides).sum(-1), numel).permute(0, 2, 1, 3)
    chan = torch.arange(channels, device=device)
    col = torch.arange(padded, device=device)
    in_image = col < width
    col_class = torch.cat([col_class, col_class.new_zeros(padded - width)])
    n_tri = k * (k + 1) // 2
    n_feat = n_tri + k
    operators = _chunk_operators(channels, chunk, dtype, device)
    decay_in_chunk = torch.pow(omega, torch.arange(chunk, device=device, dtype=dtype))
    # (b, K): which padded elements are image elements
    counted = in_image.reshape(n_chunks, chunk).T

    block_elements = _ROW_BLOCK_ELEMENTS.get(device.type, _ROW_BLOCK_ELEMENTS["cpu"])
    rows_per_block = max(1, block_elements // (padded * channels))
    # carry = sum over the rows above the block of 0.8**(h - h') * (row total at h'), h = its first row;
    # laid out (F, C * b, 2N * K) like one row of the block.
    carry = images.new_zeros(n_feat, cb, n_images * n_chunks)
    work: dict[str, Tensor] = {}
    total = images.new_zeros(batch)
    for h0 in range(0, height, rows_per_block):
        n_rows = min(rows_per_block, height - h0)
        block_rows = row_class[h0 : h0 + n_rows]
        delta = flat_delta[block_rows[:, None, None], chan[None, :, None], col_class[None, None, :]]  # (L, C, Wp, k)
        here = torch.arange(h0, h0 + n_rows, device=device)[:, None, None] * (width * channels)
        here = here + col[None, None, :] * channels + chan[None, :, None]  # (L, C, Wp)
        present = in_image[None, None, :, None] & (delta < numel)
        index = torch.where(present, here[..., None] + delta, numel)
        here = torch.where(in_image[None, None, :], here, numel)
        # (k, C, b, L, 1, K) + (2N, 1): element order (c, u, row, image, chunk)
        index = index.reshape(n_rows, channels, n_chunks, chunk, k).permute(4, 1, 3, 0, 2)[:, :, :, :, None]
        here = here.reshape(n_rows, channels, n_chunks, chunk).permute(1, 3, 0, 2)[:, :, :, None]
        index = index + image_start[:, None]
        neigh = _buffer(work, "neigh", index.shape, images)  # (k, C, b, L, 2N, K)
        torch.index_select(flat_images, 0, index.reshape(-1), out=neigh.view(-1))
        values = flat_images[here + image_start[:, None]]  # (C, b, L, 2N, K)

        # Per element j: upper triangle of n_j n_j^T (row by row), then x_j n_j; one row per feature.
        feats = _buffer(work, "feats", (n_feat, *neigh.shape[1:]), images)
        start = 0
        for a in range(k):
            torch.mul(neigh[a : a + 1], neigh[a:], out=feats[start : start + k - a])
            start += k - a
        torch.mul(values, neigh, out=feats[n_tri:])
        del neigh, values
        # (F, rows of _chunk_operators, L * 2N * K)
        feats = feats.reshape(n_feat, cb, -1)
        parts = _buffer(work, "parts", (n_feat, operators.shape[0], feats.shape[-1]), images)
        for f in range(n_feat):  # one product per feature: 2-3x faster than the batched call on a CPU
            torch.mm(operators, feats[f], out=parts[f])
        del feats
        sums = parts[:, :cb].reshape(n_feat, channels, chunk, n_rows, n_images, n_chunks)
        row_total = parts[:, cb : 2 * cb].reshape(sums.shape)
        ahead = parts[:, 2 * cb : 2 * cb + channels].reshape(n_feat, channels, 1, n_rows, n_images, n_chunks)
        behind = parts[:, 2 * cb + channels :].reshape(ahead.shape)
        # Along the row: left[q] = sum over the chunks q' < q of 0.8**(b (q - q' - 1)) ahead[q'], the earlier
        # chunks seen from column 0 of chunk q (ahead already includes the step into the next chunk); right[q]
        # likewise the later chunks seen from the last column of chunk q.
        flat_shape = (n_feat, channels * n_rows * n_images, n_chunks)
        left = _chunk_recursion(ahead.reshape(flat_shape), omega**chunk, reverse=False).reshape(ahead.shape)
        right = _chunk_recursion(behind.reshape(flat_shape), omega**chunk, reverse=True).reshape(ahead.shape)
        del ahead, behind
        # column u is u steps from column 0 and b - 1 - u from the last one
        weight = decay_in_chunk.reshape(1, 1, chunk, 1, 1, 1)
        sums.addcmul_(left, weight)
        row_total.addcmul_(left, weight).addcmul_(right, weight.flip(2))
        del left, right
        # Rows: every earlier row, through the carry.
        sums = sums.reshape(n_feat, cb, n_rows, n_images * n_chunks)
        row_total = row_total.reshape(sums.shape)
        for row in range(n_rows):
            sums[:, :, row] += carry
            carry.add_(row_total[:, :, row]).mul_(omega)
        del row_total

        emb = _embed(sums.reshape(n_feat, -1), k, lam, rtol, work)
        emb = emb.reshape(k, channels, chunk, n_rows, n_images, n_chunks)
        del sums, parts
        diff = emb[:, :, :, :, :batch] - emb[:, :, :, :, batch:]
        gaps = _dot_rows(diff, diff).sqrt_()  # (C, b, L, N, K)
        gaps = gaps * counted[None, :, None, None, :]
        total += gaps.sum(dim=(0, 1, 2, 4))

    return total
