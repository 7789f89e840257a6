"""The objective of the multi-task relationship models at a fitted one (``tests/`` is on
pytest's ``pythonpath``)."""

import numpy as np

from skmtl.linear._solver_task_relation import relation_weights


def relation_objective(model, X, Y, mask, logistic):
    """The documented objective at the fitted ``model`` of TaskRelationRegressor /
    TaskRelationClassifier, with the optimal (eps = 0) Omega: each task's mean loss over its
    observed rows, ``lambda_1 / 2 ||W||_F^2 + lambda_2 / 2 ||W||_*^2`` and, for the
    classifier, the pull of the intercepts at the mean of X."""
    W, b = model.coef_, model.intercept_
    T = W.shape[0]
    lam_1, lam_2 = relation_weights(model.alpha, model.relation_ratio, T)
    value = 0.0
    for t in range(T):
        m = mask[:, t]
        z = X[m] @ W[t] + b[t]
        if logistic:
            value += np.mean(np.logaddexp(0, z) - Y[m, t] * z)
        else:
            value += 0.5 * np.mean((Y[m, t] - z) ** 2)
    value += lam_1 / 2 * np.sum(W**2) + lam_2 / 2 * np.linalg.svd(W, compute_uv=False).sum() ** 2
    if logistic and T > 1:  # the pull of the intercepts at the mean of X
        pulled = b + W @ observed_mean(X, mask)
        value += model.alpha / 2 * np.sum((pulled - pulled.mean()) ** 2)
    return value


def observed_mean(X, mask):
    """The mean of X over the observed (row, task) pairs."""
    return sum(X[mask[:, t]].sum(axis=0) for t in range(mask.shape[1])) / mask.sum()
