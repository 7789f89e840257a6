"""The subspace orthogonality penalty of sluice networks (Ruder et al., 2019): its value, its
gradient, and its effect on training (``sluice_orthogonality``)."""

import copy
import itertools
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skmtl.deep import MultiTaskRegressor, modules  # noqa: E402
from skmtl.deep.modules import MultiTaskModule, SluiceModule, build_module  # noqa: E402

N_FEATURES = 5
OUTPUT_SIZES = [1, 2, 1]


def _sluice(orthogonality, hidden_layer_sizes=(6, 4), n_subspaces=2, activation="relu"):
    module = SluiceModule(N_FEATURES, OUTPUT_SIZES, hidden_layer_sizes=hidden_layer_sizes,
                          activation=activation, n_subspaces=n_subspaces,
                          orthogonality=orthogonality)
    with torch.no_grad():  # mixing units away from their initial values
        for alpha in module.alphas:
            alpha.add_(0.1 * torch.randn_like(alpha))
    return module


def _hand_penalty(module):
    """The penalty in numpy: the weight blocks of the subspaces and the formula, written out."""
    n_sub = module.n_subspaces
    total = 0.0
    for layer in module.towers.layers:
        W = layer.weight.detach().double().numpy()  # (T, in, out)
        width = W.shape[2] // n_sub
        for t in range(W.shape[0]):
            blocks = [W[t][:, j * width:(j + 1) * width] for j in range(n_sub)]
            for j, k in itertools.combinations(range(n_sub), 2):
                total += np.sum((blocks[j].T @ blocks[k]) ** 2)
    return module.orthogonality * total


@pytest.mark.parametrize("n_subspaces, hidden", [(2, (6, 4)), (3, (6, 3))])
def test_penalty_equals_the_formula_written_out(n_subspaces, hidden):
    module = _sluice(0.7, hidden, n_subspaces)
    np.testing.assert_allclose(module.penalty().item(), _hand_penalty(module), rtol=1e-5)
    # a function of the parameters only: the same whatever the batch, copies and pickles
    module.shared(torch.randn(4, N_FEATURES))
    np.testing.assert_allclose(module.penalty().item(), _hand_penalty(module), rtol=1e-5)
    np.testing.assert_allclose(copy.deepcopy(module).penalty().item(), module.penalty().item())
    assert pickle.loads(pickle.dumps(module)).orthogonality == 0.7


def test_penalty_gradient_matches_finite_differences():
    module = _sluice(0.5, activation="tanh").double()
    weight = module.towers.layers[0].weight
    module.zero_grad()
    module.penalty().backward()
    grad = weight.grad.clone()
    eps = 1e-6
    for index in [(0, 0, 0), (1, 2, 3), (2, 4, 5)]:
        with torch.no_grad():
            weight[index] += eps
            up = module.penalty().item()
            weight[index] -= 2 * eps
            down = module.penalty().item()
            weight[index] += eps
        np.testing.assert_allclose(grad[index].item(), (up - down) / (2 * eps), rtol=1e-5)
    assert module.alphas[0].grad is None  # the mixing units are not penalised


def test_zero_weight_adds_nothing_and_build_module_passes_the_weight():
    module = _sluice(0.0)
    assert module.penalty().item() == 0.0
    assert _sluice(0.3, n_subspaces=1, hidden_layer_sizes=(4,)).penalty().item() == 0.0
    built = build_module("sluice", N_FEATURES, OUTPUT_SIZES, hidden_layer_sizes=(4,),
                         sluice_orthogonality=0.25)
    assert built.orthogonality == 0.25
    with pytest.raises(ValueError, match="orthogonality must be a finite number >= 0"):
        _sluice(-1.0)


class _SluiceWithoutPenalty(SluiceModule):
    """The sluice network before the penalty existed: nothing computed, no penalty."""

    def subspace_orthogonality(self):
        raise AssertionError("the penalty must not be computed")

    penalty = MultiTaskModule.penalty


def _data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = np.tanh(X @ rng.normal(size=(4, 2))) + 0.1 * rng.normal(size=(n, 2))
    Y[rng.uniform(size=Y.shape) < 0.2] = np.nan
    return X, Y


FIT = dict(sharing="sluice", hidden_layer_sizes=(8, 8), max_epochs=4, batch_size=16, lr=1e-2,
           early_stopping=False, dropout=0.0, random_state=0)


def test_zero_weight_fits_the_sluice_network_without_the_penalty(monkeypatch):
    X, Y = _data()
    pred = MultiTaskRegressor(**FIT, sluice_orthogonality=0.0).fit(X, Y).predict(X)
    # a positive weight (the default) changes the fit
    assert not np.allclose(MultiTaskRegressor(**FIT).fit(X, Y).predict(X), pred)
    monkeypatch.setattr(modules, "SluiceModule", _SluiceWithoutPenalty)
    reference_est = MultiTaskRegressor(**FIT, sluice_orthogonality=0.0).fit(X, Y)
    assert type(reference_est.net_.module_) is _SluiceWithoutPenalty
    np.testing.assert_array_equal(pred, reference_est.predict(X))


def _cross_products(est):
    """sum_t sum_l ||W_j^T W_k||_F^2 of the fitted towers."""
    with torch.no_grad():
        return est.net_.module_.subspace_orthogonality().item()


def test_a_large_weight_makes_the_subspaces_more_orthogonal():
    X, Y = _data(n=80)
    params = {**FIT, "max_epochs": 15}
    free = MultiTaskRegressor(**params, sluice_orthogonality=0.0).fit(X, Y)
    pushed = MultiTaskRegressor(**params, sluice_orthogonality=10.0).fit(X, Y)
    assert _cross_products(pushed) < 0.2 * _cross_products(free)
