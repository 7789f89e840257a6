"""ClusteredTasksRegressor / ClusteredTasksClassifier: references, planted clusters, checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.metrics import adjusted_rand_score, explained_variance_score
from sklearn.model_selection import KFold

from skmtl import UnknownTaskError
from skmtl.baselines import IndependentTasks
from skmtl.linear import (
    GridEdgeWarning,
    MeanClusteredClassifier,
    MeanClusteredClassifierCV,
    MeanClusteredRegressor,
    MeanClusteredRegressorCV,
    _solver_mean_clustered,
)
from skmtl.linear._clustered_tasks import ClusteredTasksClassifier, ClusteredTasksRegressor
from skmtl.linear._clustered_tasks_cv import ClusteredTasksClassifierCV, ClusteredTasksRegressorCV
from skmtl.linear._designs import Problem
from skmtl.linear._solver_clustered_tasks import (
    ClusteredTasksPenalty,
    CoupledBlocks,
    KernelBlocks,
    clustered_objective,
    fit_clustered,
    make_step,
)
from skmtl.linear._solver_mean_clustered import RowCurvature, _kernel_form, _task_moments


def _wide(seed=0, n=30, d=4, T=6, missing=0.3, classify=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = X @ rng.normal(size=(d, T)) + rng.normal(size=(n, T)) + 0.5
    if classify:
        Y = (Y > 0.5).astype(float)
    Y[rng.random(Y.shape) < missing] = np.nan
    return X, Y


def _planted(seed, n_rows=25, d=8, n_clusters=3, per_cluster=10, noise=2.0):
    """3 clusters of 10 tasks, 25 rows each (long format), far-apart cluster means."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(n_clusters, d))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    W = centres[truth] + 0.2 * rng.normal(size=(len(truth), d))
    tasks = np.repeat(np.arange(len(truth)), n_rows)
    X = rng.normal(size=(len(tasks), d))
    y = np.einsum("nd,nd->n", X, W[tasks]) + noise * rng.normal(size=len(tasks))
    return X, y, tasks, truth, W


# -- limits: one cluster, one task per cluster -----------------------------------------------
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_one_cluster_equals_mean_clustered(fit_intercept):
    X, Y = _wide()
    ours = ClusteredTasksRegressor(alpha=0.3, n_clusters=1, within=4.0,
                                   fit_intercept=fit_intercept).fit(X, Y)
    ref = MeanClusteredRegressor(alpha=0.3, cluster_strength=4.0,
                                 fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8)
    assert np.array_equal(ours.task_clusters_, np.zeros(6, dtype=int))
    np.testing.assert_allclose(ours.cluster_coef_, ref.coef_.mean(axis=0, keepdims=True))

    X, Y = _wide(classify=True)
    ours = ClusteredTasksClassifier(alpha=0.1, n_clusters=1, within=4.0, tol=1e-14,
                                    fit_intercept=fit_intercept).fit(X, Y)
    ref = MeanClusteredClassifier(alpha=0.1, cluster_strength=4.0, tol=1e-14,
                                  fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_block_elimination_with_one_cluster_equals_the_mean_clustered_solve(fit_intercept):
    # the least-squares step hands one cluster (the start, n_clusters=1) to the mean-clustered
    # solver; the block elimination of the other partitions must agree with it at K = 1
    X, Y = _wide(seed=3)
    problem = Problem(X, Y, ~np.isnan(Y))
    design = problem.design()
    step, _ = make_step(design, problem.targets(design), logistic=False,
                        fit_intercept=fit_intercept)
    penalty = ClusteredTasksPenalty(0.3, 1.0, 4.0, np.zeros(Y.shape[1], dtype=int))
    W, _, _ = step(penalty)
    blocks = CoupledBlocks(step._A, penalty.alpha, penalty.within, X.shape[1])
    np.testing.assert_allclose(blocks.solve(step._r, penalty), W, rtol=0, atol=1e-10)


def test_block_solves_reused_across_partitions_equal_fresh_ones():
    # one CoupledBlocks serves every partition of a fit: G_t rhs_t is kept for the same rhs,
    # and the cluster sums of G_t H_t (= I - lam G_t, every coordinate ridged) follow the
    # tasks that moved. Each solve equals that of new blocks, and the product form G_t H_t.
    X, Y = _wide(seed=4, T=24)
    problem = Problem(X, Y, ~np.isnan(Y))
    design = problem.design()
    step, _ = make_step(design, problem.targets(design), logistic=False, fit_intercept=True)
    kept = CoupledBlocks(step._A, 0.3, 4.0, X.shape[1])
    per_task = kept._GH_sums(np.eye(24))  # weights e_t: G_t H_t itself
    np.testing.assert_allclose(per_task, np.matmul(kept.G, step._A), rtol=0, atol=1e-12)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=24)
    partitions = [labels]
    for n_moved in (1, 0, 3, 24, 2):  # a few tasks move (updated), or all (summed afresh)
        labels = labels.copy()
        labels[rng.choice(24, n_moved, replace=False)] = rng.integers(0, 3, size=n_moved)
        partitions.append(labels)
    partitions.append(rng.integers(0, 2, size=24))  # fewer clusters: summed afresh
    for labels in partitions:
        penalty = ClusteredTasksPenalty(0.3, 1.0, 4.0, labels)
        fresh = CoupledBlocks(step._A, 0.3, 4.0, X.shape[1]).solve(step._r, penalty)
        np.testing.assert_allclose(kept.solve(step._r, penalty), fresh, rtol=0, atol=1e-12)


def _few_rows(seed=0, d=40, sizes=(5, 7, 9, 12, 6, 15, 8, 30, 45, 11)):
    """Tasks with fewer rows than features (most fewer than d / 2: the kernel form), a few
    with more (the dense blocks), long data."""
    rng = np.random.default_rng(seed)
    tasks = np.repeat(np.arange(len(sizes)), sizes)
    X = rng.normal(size=(len(tasks), d)) + 1.0
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(len(sizes), d))
    y = np.einsum("ij,ij->i", X, W[tasks]) + rng.normal(size=len(sizes))[tasks]
    return X, y + rng.normal(size=len(tasks)), tasks


@pytest.fixture
def kernel_form_from_any_width(monkeypatch):
    """The kernel form on small data: it is taken from 128 coefficients up (smaller blocks
    stay dense, where they are cheaper), the same arithmetic at any width."""
    monkeypatch.setattr(_solver_mean_clustered, "_KERNEL_MIN_COEF", 1)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_kernel_blocks_solve_the_dense_blocks_system(fit_intercept, monkeypatch):
    # the W step on tasks with fewer rows than features keeps Q_t = M_t^-1 F_t (n_t x d) per
    # task, not the (T, d, d) moments and inverses: the same solution for every partition,
    # with tasks moving (the cluster sums updated) or not, stacks of both forms mixed
    X, y, tasks = _few_rows()
    problem = Problem(X, y, task_index=tasks, n_tasks=10)
    design = problem.design()
    targets = problem.targets(design)
    assert not _kernel_form(design, 40)  # 40 coefficients: dense blocks by default
    monkeypatch.setattr(_solver_mean_clustered, "_KERNEL_MIN_COEF", 1)
    step, _ = make_step(design, targets, logistic=False, fit_intercept=fit_intercept)
    assert step._A is None  # no per-task moments formed
    kernel = KernelBlocks(design, targets, 0.3, 4.0, fit_intercept)
    assert {form for _, form, _ in kernel._parts} == {True, False}
    assert sum(Q.size for _, form, Q in kernel._parts if form) < 10 * 40 * 40 / 4
    A, r, x_mean, y_mean = _task_moments(design, targets, fit_intercept)
    dense = CoupledBlocks(A, 0.3, 4.0, 40)
    np.testing.assert_allclose(kernel.x_mean, x_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernel.y_mean, y_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernel._GH_sums(np.eye(10)), np.matmul(dense.G, A),
                               rtol=0, atol=1e-10)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=10)
    for n_moved in (0, 1, 2, 10, 1):
        labels = labels.copy()
        labels[rng.choice(10, n_moved, replace=False)] = rng.integers(0, 3, size=n_moved)
        if np.unique(labels).size < 3:
            continue
        penalty = ClusteredTasksPenalty(0.3, 0.5, 4.0, labels)
        np.testing.assert_allclose(kernel.solve(None, penalty), dense.solve(r, penalty),
                                   rtol=1e-9, atol=1e-10)


@pytest.mark.usefixtures("kernel_form_from_any_width")
def test_kernel_form_fit_is_the_cvxpy_minimiser_and_the_dense_fit():
    X, y, tasks = _few_rows(seed=2, d=30, sizes=(6, 8, 5, 9, 7, 10))
    Y = np.full((len(tasks), 6), np.nan)
    Y[np.arange(len(tasks)), tasks] = y  # wide with missing labels: the same grouped rows
    labels = np.array([0, 1, 0, 2, 1, 2])
    alpha, between, within = 0.2, 0.5, 5.0
    problem = Problem(X, Y, ~np.isnan(Y))
    design = problem.design()
    targets = problem.targets(design)
    step, loss = make_step(design, targets, logistic=False, fit_intercept=True)
    penalty = ClusteredTasksPenalty(alpha, between, within, labels)
    W, b, _ = step(penalty)
    assert isinstance(step._blocks, KernelBlocks)
    ours = clustered_objective(design, targets, W, b, penalty, loss)
    reference = _cvxpy_value(X, Y, labels, alpha, between, within, False)
    assert ours == pytest.approx(reference, rel=1e-6)
    assert ours <= reference * (1 + 1e-9)
    # the estimator: the same fit as through the dense blocks
    model = ClusteredTasksRegressor(alpha=0.05, n_clusters=2, random_state=0).fit(
        X, y, task_ids=tasks)
    A, r, x_mean, y_mean = _task_moments(design, targets, True)
    dense = CoupledBlocks(A, 0.05, model.within, 30)
    penalty = ClusteredTasksPenalty(0.05, model.between, model.within, model.task_clusters_)
    dense_W = dense.solve(r, penalty)
    np.testing.assert_allclose(model.coef_, dense_W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, y_mean - np.einsum("td,td->t", dense_W, x_mean),
                               rtol=1e-8, atol=1e-10)


def _few_rows_labels(seed=0, **kwargs):
    X, y, tasks = _few_rows(seed, **kwargs)
    labels = (y > np.median(y)).astype(float)
    labels[np.unique(tasks, return_index=True)[1]] = 1.0 - labels[  # both classes per task
        np.unique(tasks, return_index=True)[1] + 1]
    return X, labels, tasks


@pytest.mark.usefixtures("kernel_form_from_any_width")
def test_kernel_blocks_of_the_logistic_rows_solve_the_dense_system():
    # the logistic Newton system on tasks with fewer labels than coefficients: H_t = F_t^T
    # F_t kept as F_t = sqrt(weight) [x, 1] (RowCurvature), the intercept the pulled last
    # coordinate; stacks of both forms mixed
    X, y, tasks = _few_rows_labels()
    problem = Problem(X, y, task_index=tasks, n_tasks=10)
    design = problem.design(at_mean=True)
    weight = np.random.default_rng(3).uniform(0.01, 0.25, size=len(y)) / 20
    curvature = RowCurvature(design, weight, True)
    assert _kernel_form(design, 41)
    kernel = KernelBlocks.from_rows(curvature, 0.3, 4.0)
    assert {form for _, form, _ in kernel._parts} == {True, False}
    dense = CoupledBlocks(curvature.dense(), 0.3, 4.0, 40, pull_last=True)
    rhs = np.random.default_rng(4).normal(size=(10, 41))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    for between in (0.5, 4.0):  # one cluster's start (between = within), then clusters
        penalty = ClusteredTasksPenalty(0.3, between, 4.0, labels)
        np.testing.assert_allclose(kernel.solve(rhs, penalty), dense.solve(rhs, penalty),
                                   rtol=1e-9, atol=1e-10)


@pytest.mark.usefixtures("kernel_form_from_any_width")
@pytest.mark.parametrize("Estimator", [MeanClusteredClassifier, ClusteredTasksClassifier])
def test_classifiers_kernel_form_fit_equals_the_dense_fit(Estimator, monkeypatch):
    X, y, tasks = _few_rows_labels(seed=5)
    params = {"alpha": 0.1} | ({"random_state": 0, "n_clusters": 2}
                              if Estimator is ClusteredTasksClassifier else {})
    built = []
    from_rows = KernelBlocks.from_rows.__func__
    monkeypatch.setattr(KernelBlocks, "from_rows", classmethod(
        lambda cls, *args: built.append(1) or from_rows(cls, *args)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel = Estimator(**params).fit(X, y, task_ids=tasks)
    assert built  # the Newton steps went through the kernel form
    monkeypatch.setattr(_solver_mean_clustered, "_kernel_form", lambda design, n_coef: False)
    dense = Estimator(**params).fit(X, y, task_ids=tasks)
    np.testing.assert_allclose(kernel.coef_, dense.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(kernel.intercept_, dense.intercept_, rtol=1e-7, atol=1e-9)
    if Estimator is ClusteredTasksClassifier:
        np.testing.assert_array_equal(kernel.task_clusters_, dense.task_clusters_)


def test_one_task_per_cluster_equals_mean_clustered_with_between():
    X, Y = _wide()
    ours = ClusteredTasksRegressor(alpha=0.3, n_clusters=6, between=0.5).fit(X, Y)
    ref = MeanClusteredRegressor(alpha=0.3, cluster_strength=0.5).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8)
    assert np.array_equal(ours.task_clusters_, np.arange(6))
    np.testing.assert_allclose(ours.cluster_coef_, ours.coef_)

    X, Y = _wide(classify=True)
    ours = ClusteredTasksClassifier(alpha=0.1, n_clusters=6, between=0.5, tol=1e-14).fit(X, Y)
    ref = MeanClusteredClassifier(alpha=0.1, cluster_strength=0.5, tol=1e-14).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8)


# -- a fixed partition against cvxpy ---------------------------------------------------------
def _cvxpy_value(X, Y, labels, alpha, between, within, logistic):
    cp = pytest.importorskip("cvxpy")
    n, T = Y.shape
    d = X.shape[1]
    W, b = cp.Variable((T, d)), cp.Variable(T)
    loss = 0
    for t in range(T):
        rows = ~np.isnan(Y[:, t])
        z = X[rows] @ W[t] + b[t]
        if logistic:
            loss += cp.sum(cp.logistic(z) - cp.multiply(Y[rows, t], z)) / rows.sum()
        else:
            loss += cp.sum_squares(Y[rows, t] - z) / (2 * rows.sum())

    def spread(V):
        mean = cp.sum(V, axis=0) / T
        between_part, within_part = 0, 0
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            mean_c = cp.sum(V[members], axis=0) / len(members)
            between_part += len(members) * cp.sum_squares(mean_c - mean)
            for t in members:
                within_part += cp.sum_squares(V[t] - mean_c)
        return mean, between_part, within_part

    mean, between_w, within_w = spread(W)
    penalty = alpha * (cp.sum_squares(mean) + between / T * between_w + within / T * within_w)
    if logistic:  # the intercepts' pull (their overall mean free)
        _, between_b, within_b = spread(cp.reshape(b, (T, 1), order="C"))
        penalty += alpha / T * (between * between_b + within * within_b)
    problem = cp.Problem(cp.Minimize(loss + penalty))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return problem.value


@pytest.mark.parametrize("logistic", [False, True])
def test_fixed_partition_objective_against_cvxpy(logistic):
    X, Y = _wide(seed=3, classify=logistic)
    labels = np.array([0, 1, 0, 2, 1, 2])
    alpha, between, within = 0.2, 0.5, 5.0
    problem = Problem(X, Y, ~np.isnan(Y))
    design = problem.design()
    y = problem.targets(design)
    step, loss = make_step(design, y, logistic=logistic, fit_intercept=True, tol=1e-14)
    penalty = ClusteredTasksPenalty(alpha, between, within, labels)
    W, b, _ = step(penalty)
    ours = clustered_objective(design, y, W, b, penalty, loss, pull=step.pull)
    reference = _cvxpy_value(X, Y, labels, alpha, between, within, logistic)
    assert ours == pytest.approx(reference, rel=1e-6)
    assert ours <= reference * (1 + 1e-9)  # ours is the exact minimiser

    # one step serves several penalties: one cluster with within = between is one task per
    # cluster (the start of the alternation)
    single = step(ClusteredTasksPenalty(alpha, between, between, np.zeros(6, dtype=int)))
    own = step(ClusteredTasksPenalty(alpha, between, within, np.arange(6)))
    np.testing.assert_allclose(single[0], own[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(single[1], own[1], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("logistic, data", [(False, "slopes"), (True, "slopes"),
                                             (True, "intercepts")])
def test_alternation_never_increases_the_objective(logistic, data):
    if data == "slopes":
        X, y, tasks, *_ = _planted(1, n_rows=8, noise=3.0)
        if logistic:
            y = (y > 0).astype(float)
    else:  # clusters in the pulled intercepts: the assignment step must see them
        X, y, tasks, _ = _intercept_clusters(1, n_tasks=30, n_rows=8)
    problem = Problem(X, y, task_index=tasks, n_tasks=30)
    design = problem.design()
    targets = problem.targets(design)
    step, loss = make_step(design, targets, logistic=logistic, fit_intercept=True)
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(4):  # from random partitions, so that the alternation has work to do
        init = rng.permutation(np.arange(30) % 4)
        *_, n_iter, history = fit_clustered(
            step, loss, design, targets, alpha=0.05, between=0.5, within=20.0, n_clusters=4,
            n_init=1, max_iter=50, random_state=seed, init_labels=init)
        assert n_iter == len(history)
        assert np.all(np.diff(history) <= 1e-12 * abs(history[0]))
        lengths.append(n_iter)
    assert max(lengths) >= 2  # at least one reassignment


def _unsettled(seed=1, n_tasks=300, n_rows=5, d=2):
    """Tasks with no cluster structure, many of them near the boundaries between 4 clusters:
    the default alternation moves tasks for 4 W steps (from seed 1)."""
    rng = np.random.default_rng(seed)
    tasks = np.repeat(np.arange(n_tasks), n_rows)
    X = rng.normal(size=(len(tasks), d))
    W = rng.normal(size=(n_tasks, d))
    return X, np.einsum("nd,nd->n", X, W[tasks]) + 2.0 * rng.normal(size=len(tasks)), tasks


def test_max_iter_reached_warns_and_keeps_the_w_step_of_the_kept_partition():
    X, y, tasks = _unsettled()
    params = dict(n_clusters=4, within=3.0, n_init=1, random_state=0)
    full = ClusteredTasksRegressor(**params).fit(X, y, task_ids=tasks)
    assert full.n_iter_ == 4
    with pytest.warns(ConvergenceWarning, match=r"still changed after max_iter=2 alternations "
                      r"in 1 of 1 restart\(s\).*Increase max_iter"):
        short = ClusteredTasksRegressor(max_iter=2, **params).fit(X, y, task_ids=tasks)
    assert short.n_iter_ == 2
    assert not np.array_equal(short.task_clusters_, full.task_clusters_)
    # coef_ is the W step for the partition reported, not for the next assignment's
    problem = Problem(X, y, task_index=tasks, n_tasks=300)
    design = problem.design(at_mean=False)
    step, _ = make_step(design, problem.targets(design), logistic=False, fit_intercept=True)
    W, b, _ = step(ClusteredTasksPenalty(1.0, 1.0, 3.0, short.task_clusters_))
    np.testing.assert_allclose(short.coef_, W, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(short.intercept_, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        short.cluster_coef_, [W[short.task_clusters_ == c].mean(axis=0) for c in range(4)])
    with warnings.catch_warnings():  # a partition that settles within max_iter: no warning
        warnings.simplefilter("error", ConvergenceWarning)
        ClusteredTasksRegressor(max_iter=4, **params).fit(X, y, task_ids=tasks)


def _intercept_clusters(seed, n_tasks=20, n_rows=60, d=3):
    """Binary tasks in two clusters that differ in their intercept only (+2 or -2 log-odds,
    the base rate), slopes around one mean: long format. Returns ``(X, y, tasks, truth)``."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n_tasks) % 2
    W = np.array([1.0, -0.5, 0.3]) + 0.3 * rng.normal(size=(n_tasks, d))
    tasks = np.repeat(np.arange(n_tasks), n_rows)
    X = rng.normal(size=(len(tasks), d))
    eta = np.einsum("nd,nd->n", X, W[tasks]) + np.where(truth, 2.0, -2.0)[tasks]
    return X, (rng.random(len(tasks)) < 1.0 / (1.0 + np.exp(-eta))).astype(int), tasks, truth


def test_classifier_clusters_the_pulled_intercepts_too():
    # the penalty pulls each intercept to its cluster's mean as it pulls the coefficients, so
    # the best partition for fixed (W, b) is the k-means partition of the rows of [W, b]: on
    # tasks that differ in their base rate only, a partition of W alone was no better than
    # chance (adjusted Rand index 0.12 here; on the 8 tasks below, an objective of 5.123
    # where the best partition's is 4.514, 48 of the 128 partitions lower)
    X, y, tasks, truth = _intercept_clusters(0)
    model = ClusteredTasksClassifier(alpha=1.0, random_state=0).fit(X, y, task_ids=tasks)
    assert adjusted_rand_score(truth, model.task_clusters_) == 1.0

    # against a brute force over every partition of 8 tasks in at most 2 clusters
    X, y, tasks, truth = _intercept_clusters(1, n_tasks=8, n_rows=30)
    problem = Problem(X, y, task_index=tasks, n_tasks=8)
    design = problem.design(at_mean=True)
    targets = problem.targets(design)
    step, loss = make_step(design, targets, logistic=True, fit_intercept=True, tol=1e-14)
    alpha, between, within = 1.0, 1.0, 10.0

    def objective(labels):
        penalty = ClusteredTasksPenalty(alpha, between, within, labels)
        W, b, _ = step(penalty)
        return clustered_objective(design, targets, W, b, penalty, loss, pull=True)

    best = min(objective(np.array([0] + [int(c) for c in np.binary_repr(k, 7)]))
               for k in range(2**7))
    W, b, labels, *_ = fit_clustered(step, loss, design, targets, alpha=alpha,
                                     between=between, within=within, n_clusters=2, n_init=5,
                                     max_iter=100, random_state=0)
    ours = clustered_objective(design, targets, W, b,
                               ClusteredTasksPenalty(alpha, between, within, labels), loss,
                               pull=True)
    assert ours == pytest.approx(best, rel=1e-9)
    assert adjusted_rand_score(truth, labels) == 1.0


def _held_out_gain(model, X, y, tasks, W):
    """Held-out explained variance of ``model`` minus IndependentTasks(RidgeCV())'s, on 40
    new rows of each planted task."""
    rng = np.random.default_rng(7)
    tasks_test = np.repeat(np.arange(len(W)), 40)
    X_test = rng.normal(size=(len(tasks_test), X.shape[1]))
    y_test = (np.einsum("nd,nd->n", X_test, W[tasks_test])
              + 2.0 * rng.normal(size=len(tasks_test)))
    independent = IndependentTasks(RidgeCV()).fit(X, y, task_ids=tasks)
    return (explained_variance_score(y_test, model.predict(X_test, task_ids=tasks_test))
            - explained_variance_score(y_test, independent.predict(X_test, task_ids=tasks_test)))


# -- planted clusters --------------------------------------------------------------------------
@pytest.mark.parametrize("model", [
    ClusteredTasksRegressor(alpha=0.1, n_clusters=3, within=100.0, random_state=0),
    ClusteredTasksRegressorCV(n_clusters=3, within=100.0, n_alphas=5, cv=3, random_state=0),
], ids=["fixed-alpha", "cv"])
def test_planted_clusters_are_recovered_and_help(model):
    X, y, tasks, truth, W = _planted(0)
    model.fit(X, y, task_ids=tasks)
    assert adjusted_rand_score(truth, model.task_clusters_) >= 0.9
    assert _held_out_gain(model, X, y, tasks, W) > 0


# -- data layouts, unknown tasks ---------------------------------------------------------------
@pytest.mark.parametrize("Estimator", [ClusteredTasksRegressor, ClusteredTasksClassifier])
def test_long_equals_wide_and_sparse_equals_dense(Estimator):
    classify = Estimator is ClusteredTasksClassifier
    X, Y = _wide(seed=5, n=40, T=8, classify=classify)
    params = dict(alpha=0.1, n_clusters=3, random_state=0, standardize=True)
    if classify:
        params["tol"] = 1e-14
    wide = Estimator(**params).fit(X, Y)
    rows, tasks = np.nonzero(~np.isnan(Y))
    long = Estimator(**params).fit(X[rows], Y[rows, tasks], task_ids=tasks)
    sparse = Estimator(**params).fit(sp.csr_matrix(X), Y)
    for other in (long, sparse):
        np.testing.assert_array_equal(other.task_clusters_, wide.task_clusters_)
        np.testing.assert_allclose(other.coef_, wide.coef_, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(other.intercept_, wide.intercept_, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(other.cluster_coef_, wide.cluster_coef_, rtol=1e-7,
                                   atol=1e-9)


def test_unknown_task_shared_uses_the_overall_mean():
    X, y, tasks, *_ = _planted(2, n_rows=10)
    model = ClusteredTasksRegressor(alpha=0.1, n_clusters=3, unknown_task="shared",
                                    random_state=0).fit(X, y, task_ids=tasks)
    np.testing.assert_allclose(model.shared_coef_, model.coef_.mean(axis=0))
    expected = X[:5] @ model.coef_.mean(axis=0) + model.intercept_.mean()
    np.testing.assert_allclose(model.predict(X[:5], task_ids=[99] * 5), expected)
    with pytest.raises(UnknownTaskError):
        model.set_params(unknown_task="error").predict(X[:5], task_ids=[99] * 5)


@pytest.mark.parametrize("alpha", [1e12, 1e16, 1e20, 1e30])
def test_overwhelming_alpha_classifier_fits_the_null_model_without_warning(alpha):
    # the free mean intercept's Newton step once followed the rounding of the pull's gradient:
    # 50 steps without converging at 1e16, a line search failing at 1e18, a LinAlgError at 1e20
    X, Y = _wide(classify=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = ClusteredTasksClassifier(alpha=alpha, random_state=0).fit(X, Y)
    rate = np.nanmean(Y, axis=0).mean()
    assert np.abs(model.coef_).max() < 1e-10
    np.testing.assert_allclose(model.intercept_, np.log(rate / (1.0 - rate)), atol=1e-5)


def test_within_below_between_raises():
    X, Y = _wide()
    with pytest.raises(ValueError, match="within must be >= between"):
        ClusteredTasksRegressor(between=2.0, within=1.0).fit(X, Y)


# -- ClusteredTasksRegressorCV -----------------------------------------------------------------
def test_cv_refits_the_best_alpha_on_a_units_free_grid():
    X, Y = _wide(seed=4, n=60, T=6, missing=0.2)
    model = ClusteredTasksRegressorCV(n_alphas=6, cv=3, random_state=0).fit(X, Y)
    assert model.alpha_ in model.alphas_
    assert model.best_score_ == np.max(model.cv_results_["mean_test_score"])
    fixed = ClusteredTasksRegressor(alpha=model.alpha_, standardize=True,
                                    random_state=0).fit(X, Y)
    np.testing.assert_allclose(model.coef_, fixed.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.task_clusters_, fixed.task_clusters_)
    # the default grid does not depend on the units of the features
    scaled = ClusteredTasksRegressorCV(n_alphas=6, cv=3, random_state=0).fit(1e3 * X, Y)
    np.testing.assert_allclose(scaled.alphas_, model.alphas_, rtol=1e-8)
    np.testing.assert_allclose(1e3 * scaled.coef_, model.coef_, rtol=1e-6, atol=1e-9)


# -- ClusteredTasksClassifierCV, and both CVs against MeanClustered*CV ---------------------------
def test_classifier_cv_finds_planted_clusters_and_refits_the_fixed_model():
    X, y, tasks, truth, _ = _planted(3, n_rows=30, d=3, per_cluster=3, noise=0.0)
    y = (y + np.random.default_rng(0).logistic(size=y.size) > 0).astype(int)
    model = ClusteredTasksClassifierCV(n_clusters=3, within=100.0, n_alphas=4, n_init=2, cv=3,
                                       random_state=0).fit(X, y, task_ids=tasks)
    assert adjusted_rand_score(truth, model.task_clusters_) == 1.0
    fixed = ClusteredTasksClassifier(alpha=model.alpha_, n_clusters=3, within=100.0, n_init=2,
                                     standardize=True, random_state=0).fit(X, y, task_ids=tasks)
    np.testing.assert_array_equal(model.task_clusters_, fixed.task_clusters_)
    np.testing.assert_allclose(model.coef_, fixed.coef_, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(model.predict(X, task_ids=tasks),
                                  fixed.predict(X, task_ids=tasks))
    assert model.best_score_ < 0  # minus a log loss


@pytest.mark.parametrize("classify", [False, True], ids=["regressor", "classifier"])
def test_one_cluster_cv_equals_mean_clustered_cv(classify):
    # one cluster is MeanClustered* with cluster_strength = within; with between = 1 both
    # default grids start at 10 T h e_max / 2: the same grid, folds, scores and choice
    X, Y = _wide(seed=6, n=45, T=4, classify=classify)
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    CV, Reference = ((ClusteredTasksClassifierCV, MeanClusteredClassifierCV) if classify
                     else (ClusteredTasksRegressorCV, MeanClusteredRegressorCV))
    tight = {"tol": 1e-12} if classify else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        ours = CV(n_clusters=1, between=1.0, within=4.0, n_alphas=4, cv=splits,
                  **tight).fit(X, Y)
        ref = Reference(cluster_strengths=(4.0,), n_alphas=4, cv=splits, **tight).fit(X, Y)
    np.testing.assert_allclose(ours.alphas_, ref.alphas_, rtol=1e-12)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=1e-8)
    assert ours.alpha_ == ref.alpha_
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-8)
