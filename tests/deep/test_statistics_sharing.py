"""Statistical claims about the relationship-learning sharing strategies, on seeded data.

Tasks in two groups: the tasks of a group have coefficients close to one vector on the group's
half of the features (``w_t = b_g + 0.3 e_t``), and the two groups use disjoint halves. Each
claim is checked on the first three seeds with a margin; the comment above each test gives
what an offline run on seeds 0 .. 9 of the same set-up measured.

- ``"relationship"`` (8 tasks, 30 labels each among 400 rows): beats hard sharing on held-out
  R^2, and its ``task_correlation_`` is high within the groups and low across them.
- ``"adaptive"`` (8 tasks, 60 fully labelled rows, a narrow top layer of 2 units): branches
  into exactly the two groups and beats hard sharing on held-out R^2.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep import MultiTaskRegressor  # noqa: E402

SEEDS = [0, 1, 2]
N_TASKS = 8
GROUP = np.arange(N_TASKS) >= N_TASKS // 2
SAME = np.equal.outer(GROUP, GROUP) & ~np.eye(N_TASKS, dtype=bool)
ACROSS = ~np.equal.outer(GROUP, GROUP)


def two_groups(seed, n_train, labels_per_task, n_test=400, n_features=12):
    """Wide (n_train, 8) training targets with ``labels_per_task`` observed labels per task,
    and fully labelled test rows."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_train + n_test, n_features))
    W = np.zeros((n_features, N_TASKS))
    half = n_features // 2
    for g in range(2):
        base = rng.normal(size=half)
        for t in np.flatnonzero(GROUP == g):
            W[g * half:(g + 1) * half, t] = base + 0.3 * rng.normal(size=half)
    Y = np.tanh(X @ W / 2) * 2 + 0.3 * rng.normal(size=(n_train + n_test, N_TASKS))
    train = np.full((n_train, N_TASKS), np.nan)
    for t in range(N_TASKS):
        rows = rng.choice(n_train, labels_per_task, replace=False)
        train[rows, t] = Y[rows, t]
    return X[:n_train], train, X[n_train:], Y[n_train:]


RELATIONSHIP_NET = dict(hidden_layer_sizes=(32, 4), max_epochs=60, lr=3e-3, batch_size=32,
                        dropout=0.0, weight_decay=0.0, early_stopping=False)


# Offline, seeds 0 .. 9: relationship won on all 10, gain in held-out R^2 from 0.027 to 0.475
# (mean 0.13; hard's R^2 from 0.15 to 0.77); correlation within minus across the groups from
# 0.52 to 0.98.
@pytest.mark.parametrize("seed", SEEDS)
def test_relationship_beats_hard_sharing_and_its_correlation_finds_the_groups(seed):
    X, Y, X_test, Y_test = two_groups(seed, n_train=400, labels_per_task=30)
    hard = MultiTaskRegressor(**RELATIONSHIP_NET, random_state=seed).fit(X, Y)
    related = MultiTaskRegressor(sharing="relationship", relationship_penalty=1.0,
                                 **RELATIONSHIP_NET, random_state=seed).fit(X, Y)
    assert related.score(X_test, Y_test) > hard.score(X_test, Y_test) + 0.05
    correlation = related.task_correlation_
    assert correlation[SAME].mean() > correlation[ACROSS].mean() + 0.4


ADAPTIVE_NET = dict(hidden_layer_sizes=(32, 2), activation="tanh", max_epochs=120, lr=1e-2,
                    batch_size=64, dropout=0.0, weight_decay=0.0, early_stopping=False)


# Offline, seeds 0 .. 9: the mean affinity was positive within the groups and negative across
# them on all 10 (within 0.14 to 0.61, across -0.25 to -0.70); the top layer split into exactly
# the two groups on 7 (all but seeds 4, 7, 8, where one or two tasks joined the other branch);
# adaptive beat hard on 8, gain from -0.048 to 0.105 (mean 0.051). Before the affinity was
# restricted to the second half of the thin phase: exactly the groups on 5, mean gain 0.046.
@pytest.mark.parametrize("seed", SEEDS)
def test_adaptive_branches_into_the_groups_and_beats_hard_sharing(seed):
    X, Y, X_test, Y_test = two_groups(seed, n_train=60, labels_per_task=60)
    hard = MultiTaskRegressor(**ADAPTIVE_NET, random_state=seed).fit(X, Y)
    adaptive = MultiTaskRegressor(sharing="adaptive", max_branches=2, **ADAPTIVE_NET,
                                  random_state=seed).fit(X, Y)
    # the top layer splits into the two groups; the layer below stays shared
    assert adaptive.branches_ == [[list(range(8))], [[0, 1, 2, 3], [4, 5, 6, 7]]]
    assert adaptive.score(X_test, Y_test) > hard.score(X_test, Y_test) + 0.02
    # the affinity that drove the split: positive within the groups, negative across
    affinity = adaptive.gradient_affinity_
    assert affinity[SAME].mean() > 0 > affinity[ACROSS].mean()
