"""Linear algebra shared by the solvers: stacks of SPD inverses / solves, rank-k updates, and
the BLAS thread count for small blocks."""

from contextlib import contextmanager, nullcontext
from functools import cache

import numpy as np
from numba import njit
from scipy.linalg import blas, lapack
from threadpoolctl import ThreadpoolController

_SYRK = blas.dsyrk
# Per-task work (rows x features^2) from which one rank-k update per task beats a batched
# product over a stack of tasks (the Python loop's overhead is then negligible).
_SYRK_WORK = 2**17


def _syrk_lower(out, Z, add=False, alpha=None):
    """``Z^T Z`` into the lower triangle of the C-contiguous (d, d) ``out`` (zeros), in place
    (``add``: added to its lower triangle; ``alpha``: ``alpha Z^T Z`` added to it).

    A symmetric rank-k update (BLAS ``dsyrk``): half the flops of ``Z.T @ Z``. A Fortran Z is
    passed as it is (``A^T A``), a C-contiguous one as ``Z.T``, the Fortran (d, n) matrix whose
    ``A A^T`` is the same product; ``out.T`` is the Fortran matrix whose upper triangle it
    fills. Nothing is copied.
    """
    beta = 1.0 if add or alpha is not None else 0.0
    alpha = 1.0 if alpha is None else alpha
    if Z.flags.f_contiguous:
        _SYRK(alpha, Z, beta=beta, c=out.T, trans=1, lower=0, overwrite_c=1)
    else:
        _SYRK(alpha, np.ascontiguousarray(Z).T, beta=beta, c=out.T, trans=0, lower=0,
              overwrite_c=1)


def _mirror_lower(out):
    """Copy the lower triangle of every (d, d) block of ``out`` to its upper triangle."""
    lower, upper = np.tril_indices(out.shape[-1], -1)
    out[:, upper, lower] = out[:, lower, upper]
    return out



_POTRF, _POTRI, _POTRS = lapack.dpotrf, lapack.dpotri, lapack.dpotrs


@cache
def _threadpools():
    return ThreadpoolController()


def _blas_threads_for(block_size):
    """One BLAS thread for blocks of up to a few hundred coordinates, where threads only add
    overhead (and stall on a busy CPU); the default for large blocks.

    A coupled solve alternates between scipy's LAPACK and numpy's products, two OpenBLAS
    thread pools: on two cores, 14 blocks of 104 took 8 to 38 ms with two threads against
    3 ms with one (400: 145 against 105 ms; 800: 510 against 610 ms, where threads pay off).
    """
    if _TINY_BLOCK < block_size <= _SMALL_BLOCK:
        return _threadpools().limit(limits=1, user_api="blas")
    return nullcontext()  # tiny blocks go to numpy's batched routines, large ones to LAPACK


_TINY_BLOCK, _SMALL_BLOCK = 8, 512


class _OneBlasThread:
    """A mixin for the linear models whose fit is many small products (per-task blocks, a
    few features): the whole fit on one BLAS thread up to ``_SMALL_BLOCK`` features (beyond,
    the default). OpenBLAS's threads add nothing on such blocks and wait for a core when
    another process uses one: with two busy processes on two cores, 1,000 tasks of 20 rows
    and 30 features took 13.6 s instead of 0.95 s (``HierarchicalRegressor()``), 0.40 s
    instead of 0.12 s (``LowRankRegressor``); on an idle machine one thread costs 1 to 5%
    (the hierarchical model's large products keep the threads, :func:`_threads_outside`)."""

    def _fit_threads(self, n_features):
        return _one_blas_thread() if n_features <= _SMALL_BLOCK else nullcontext()


_OUTSIDE = []  # the BLAS threads outside each one-thread fit entered, the innermost last


@contextmanager
def _one_blas_thread():
    """One BLAS thread inside, the count from outside kept for :func:`_threads_outside`."""
    outside = max((pool["num_threads"] for pool in _threadpools().select(
        user_api="blas").info()), default=1)
    with _threadpools().limit(limits=1, user_api="blas"):
        _OUTSIDE.append(outside)
        try:
            yield
        finally:
            _OUTSIDE.pop()


def _threads_outside():
    """For one large product (a few hundred rows, columns and inner dimension) inside a
    one-thread fit: the BLAS threads from outside it. Such a product gains from threads on
    an idle machine and loses little on a busy one (the hierarchical model's ``496 x 1000``
    times ``1000 x 496`` Gram matrix: 14 ms with two threads, 27 ms with one; beside two busy
    processes on two cores, 34 against 28 ms)."""
    if not _OUTSIDE or _OUTSIDE[-1] <= 1:
        return nullcontext()
    return _threadpools().limit(limits=_OUTSIDE[-1], user_api="blas")
_FAST = {"reassoc", "contract", "nsz"}  # as the solvers' kernels


def _gram_singular(W):
    """``(s, V, tall)``: the singular values of ``W`` (decreasing) and its singular vectors on
    the short side (``V`` of ``W^T W`` when ``W`` is tall, ``U`` of ``W W^T`` when wide), from
    the eigendecomposition of that ``k x k`` Gram matrix (``k = min(W.shape)``): three times
    faster than LAPACK's SVD of a 1,000 x 30 ``W``, but a singular value ``sigma`` only to
    ``eps * sigma_max^2 / sigma`` (the caller checks the range it needs)."""
    tall = W.shape[0] >= W.shape[1]
    values, vectors = np.linalg.eigh(W.T @ W if tall else W @ W.T)
    return np.sqrt(np.maximum(values[::-1], 0.0)), vectors[:, ::-1], tall


def _spd_inverse(K, *, rebuild=None):
    """Inverses of a stack of symmetric positive definite matrices K (T, p, p).

    With ``rebuild``, a C-contiguous float64 K is overwritten by its inverses (no copy), and
    ``rebuild(t)`` must return the original block t (for the rare block whose Cholesky fails).
    """
    n_blocks, p, _ = K.shape
    if p <= _TINY_BLOCK:  # numpy's batched LU beats a Python loop over LAPACK calls
        try:
            return np.linalg.inv(K)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(K, hermitian=True)
    # For larger blocks this loop beats numpy's batched inverse (one gufunc call, LU), whose
    # per-block overhead is larger than these two LAPACK calls (5,000 blocks of 30 x 30: 60 ms
    # against 90 ms); so do numpy's batched Cholesky and solve against the loops below. Many
    # blocks (at least twice their size) go to a compiled kernel vectorised over the blocks:
    # 1,000 of 30 x 30 1.6x faster than the loop, 100 of 30 x 30 2x (14 of 103: the loop).
    in_place = rebuild is not None and K.flags.c_contiguous and K.dtype == np.float64
    if n_blocks >= 2 * p:
        source = K if K.dtype == np.float64 else K.astype(np.float64)
        out = K if in_place else np.empty(K.shape)
        is_failed = np.zeros(n_blocks, dtype=np.bool_)
        _spd_inverse_blocks(source, out, is_failed)  # reads all of K before writing out
        failed = np.flatnonzero(is_failed)
    else:
        out = K if in_place else np.array(K, dtype=np.float64, order="C", copy=True)
        failed = _spd_inverse_loop(out, p)
    for t in failed:  # numerically singular block (e.g. saturated logistic weights)
        out[t] = np.linalg.pinv(rebuild(t) if in_place else K[t], hermitian=True)
    return out


def _spd_inverse_loop(out, p):
    """:func:`_spd_inverse` by LAPACK, block by block, in place; the blocks that failed."""
    failed = []
    for t in range(out.shape[0]):
        # out[t].T is a Fortran view of the symmetric block: Cholesky, then inverse, in place
        # (LAPACK fills its upper triangle, i.e. the lower triangle of out[t]).
        factor, info = _POTRF(out[t].T, lower=0, clean=0, overwrite_a=1)
        if info == 0:
            _, info = _POTRI(factor, lower=0, overwrite_c=1)
        if info != 0:
            failed.append(t)
    upper, lower = np.triu_indices(p, 1)
    out[:, upper, lower] = out[:, lower, upper]
    return failed


@njit(cache=True, fastmath=_FAST)
def _cholesky_task_last(L, failed):
    """In place, the Cholesky factors of a task-last stack of SPD blocks: ``L[i, j, t]``
    (``j <= i``, the lower triangles given) becomes the lower factor of block t, its diagonal
    holding ``1 / L_ii``. Every inner loop runs over the blocks (contiguous, vectorised). A
    block that is not numerically positive definite is flagged in ``failed`` (its factor is
    then meaningless)."""
    p, T = L.shape[0], L.shape[2]
    for i in range(p):
        for k in range(i + 1):
            row = L[i, k]
            for m in range(k):
                left, right = L[i, m], L[k, m]
                for t in range(T):
                    row[t] -= left[t] * right[t]
            if i == k:
                for t in range(T):
                    if not row[t] > 0.0:
                        failed[t] = True
                        row[t] = 1.0
                    row[t] = 1.0 / np.sqrt(row[t])
            else:
                inverse = L[k, k]
                for t in range(T):
                    row[t] *= inverse[t]


@njit(cache=True, fastmath=_FAST)
def _spd_inverse_blocks(K, out, failed):
    """``out[t] = K[t]^-1`` for a stack of SPD blocks (``out`` may be ``K``), by Cholesky
    ``K_t = L_t L_t^T``, ``N_t = L_t^-1`` and ``K_t^-1 = N_t^T N_t``. The work arrays are
    task-last, (p, p, T), so that every inner loop runs over the blocks, contiguous and
    vectorised. A block that is not numerically positive definite is flagged in ``failed``
    (its ``out`` is then meaningless)."""
    T, p = K.shape[0], K.shape[1]
    L = np.empty((p, p, T))
    for t in range(T):
        for i in range(p):
            for j in range(i + 1):
                L[i, j, t] = K[t, i, j]
    _cholesky_task_last(L, failed)
    N = np.zeros((p, p, T))  # L^-1: N_ij = -(1 / L_ii) sum_{j <= k < i} L_ik N_kj
    for i in range(p):
        inverse = L[i, i]
        for j in range(i):
            acc = N[i, j]
            for k in range(j, i):
                left, right = L[i, k], N[k, j]
                for t in range(T):
                    acc[t] -= left[t] * right[t]
            for t in range(T):
                acc[t] *= inverse[t]
        N[i, i] = inverse
    acc = np.empty(T)
    for i in range(p):  # (N^T N)_ij = sum_{k >= i} N_ki N_kj, j <= i
        for j in range(i + 1):
            acc[:] = 0.0
            for k in range(i, p):
                left, right = N[k, i], N[k, j]
                for t in range(T):
                    acc[t] += left[t] * right[t]
            for t in range(T):
                out[t, i, j] = acc[t]
                out[t, j, i] = acc[t]


@njit(cache=True)
def _substitute(L, B, transposed):
    """``L^-1 B`` (``transposed``: ``L^-T B``) for a lower-triangular ``L`` (k x k) and ``B``
    (k x m), by substitution; ``B`` is not modified."""
    k, m = B.shape
    X = B.copy()
    for step in range(k):
        if transposed:  # bottom up: row i of L^T is column i of L, below the diagonal
            i = k - 1 - step
            for j in range(i + 1, k):
                for c in range(m):
                    X[i, c] -= L[j, i] * X[j, c]
        else:
            i = step
            for j in range(i):
                for c in range(m):
                    X[i, c] -= L[i, j] * X[j, c]
        inverse = 1.0 / L[i, i]
        for c in range(m):
            X[i, c] *= inverse
    return X


def _solve_lower(L, B, transposed=False):
    """``L^-1 B`` (``transposed``: ``L^-T B``) for a lower-triangular ``L``, ``B`` of one or
    two dimensions: compiled substitution, where scipy's ``solve_triangular`` would wake its
    OpenBLAS thread pool beside numpy's (two pools on the same cores stall each other: a
    solver alternating numpy's products with scipy's small solves ran 2 to 5 times slower
    on two cores with two threads than with one)."""
    B = np.asarray(B, dtype=np.float64)
    X = _substitute(np.ascontiguousarray(L, dtype=np.float64),
                    np.ascontiguousarray(B.reshape(len(B), -1)), transposed)
    return X.reshape(B.shape)


def _solve_cholesky(L, B):
    """``(L L^T)^-1 B`` from the lower Cholesky factor ``L`` (:func:`_solve_lower` twice)."""
    return _solve_lower(L, _solve_lower(L, B), transposed=True)


def _spd_solve(K, rhs):
    """Solutions of ``K[t] x_t = rhs[t]`` for a stack of symmetric positive definite K."""
    n_blocks, p, _ = K.shape
    if p <= _TINY_BLOCK:
        try:
            return np.linalg.solve(K, rhs[:, :, None])[..., 0]
        except np.linalg.LinAlgError:
            return np.matmul(_spd_inverse(K), rhs[:, :, None])[..., 0]
    out = np.empty((n_blocks, p))
    failed = []
    for t in range(n_blocks):
        factor, info = _POTRF(K[t].T, lower=0, clean=0)
        if info == 0:
            out[t], info = _POTRS(factor, rhs[t], lower=0)
        if info != 0:
            failed.append(t)
    for t in failed:
        out[t] = np.linalg.pinv(K[t], hermitian=True) @ rhs[t]
    return out


def _pcg(matvec, precondition, b, x0, rtol, maxiter, product=None):
    """Preconditioned conjugate gradients on arrays of any shape, as
    :func:`scipy.sparse.linalg.cg`.

    Stops when the residual norm falls below ``rtol ||b||`` (``atol = 0``), with the same
    iterates. ``precondition(r)`` returns ``(z, U^T z)`` and ``matvec(p, U^T p)`` takes the
    coordinates ``U^T`` of its vector on the coupling's subspace (None: computed): those of
    each search direction ``p = z + beta p_old`` follow by the same recurrence, sparing a
    product with ``U`` per iteration (the task-relation W step; elsewhere ``precondition`` may
    return ``(z, None)``, and ``matvec`` then gets None). ``z`` must be a new array, not
    ``r``. ``product``: ``matvec`` of ``x0``, when known. Returns ``(x, n_iter)``, ``n_iter
    == maxiter`` when the residual has not reached ``rtol ||b||``.
    """
    b_norm = np.linalg.norm(b)
    if b_norm == 0.0:
        return np.zeros_like(b), 0
    threshold = rtol * b_norm
    x = x0.copy()
    if product is not None:
        r = b - product
    else:
        r = b - matvec(x, None) if x.any() else b.copy()
    rho_prev = None
    for iteration in range(maxiter):
        if np.linalg.norm(r) < threshold:
            return x, iteration
        z, Uz = precondition(r)
        rho = float(np.vdot(r, z))
        if rho_prev is None:
            p, Up = z, Uz
        else:
            beta = rho / rho_prev
            p *= beta
            p += z
            Up = None if Uz is None else Uz + beta * Up
        q = matvec(p, Up)
        step = rho / float(np.vdot(p, q))
        x += step * p
        r -= step * q
        rho_prev = rho
    return x, maxiter
