"""Early stopping on whole scaffolds against early stopping on random rows, on MoleculeACE.

The deep estimators hold out ``validation_fraction`` of the training rows for early stopping.
With ``fit(X, y, groups=...)`` the held-out rows are whole groups. This script measures what
that changes when the model is judged on new scaffolds: four aminergic MoleculeACE targets
(D4, D3, 5-HT1A, SERT; 1,024-bit fingerprints, pKi), their molecules' Murcko scaffolds (rdkit)
as groups, 5 shuffled :class:`~skmtl.model_selection.MultiTaskGroupKFold` folds of the
scaffolds (``random_state=0``). On each training fold, ``MultiTaskRegressor(random_state=0)``
(every other parameter at its default: early stopping on a tenth of the rows) is fitted twice,
without groups (validation rows drawn at random) and with the training fold's scaffolds as
``groups`` (validation rows are whole scaffolds), and judged on the test fold.

Printed, per target: the test R^2 of both fits (mean over the folds), the gain of the
scaffold-stopped fit (paired over the folds, with its standard error); then, over the folds,
the epochs run, the best validation loss (the mean over targets of each target's mean
squared error on its standardised validation labels, the loss early stopping watches) and the
same loss on the test fold (each target standardised with its training fold's mean and
standard deviation), which the validation loss estimates.

``python benchmarks/scaffold_early_stopping.py`` (about 5 minutes on 2 cores; ``--quick``:
two folds of two epochs, a check of the plumbing whose numbers mean nothing).
"""

import argparse
import time

import numpy as np
import torch
from rdkit.Chem.Scaffolds import MurckoScaffold

from skmtl.datasets import load_moleculeace
from skmtl.deep import MultiTaskRegressor
from skmtl.model_selection import MultiTaskGroupKFold

TARGETS = {"CHEMBL219_Ki": "D4", "CHEMBL234_Ki": "D3", "CHEMBL214_Ki": "5-HT1A",
           "CHEMBL228_Ki": "SERT"}


def run(quick):
    mace = load_moleculeace(targets=list(TARGETS), n_bits=1024)
    X = mace.data.astype(np.float32)
    Y = np.asarray(mace.target, dtype=np.float64)
    scaffolds = np.array([MurckoScaffold.MurckoScaffoldSmiles(s) for s in mace.smiles])
    folds = list(MultiTaskGroupKFold(5, shuffle=True, random_state=0).split(
        X, Y, groups=scaffolds))[: 2 if quick else 5]
    params = {"max_epochs": 2} if quick else {}
    r2 = {"rows": [], "scaffolds": []}
    rest = {"rows": [], "scaffolds": []}  # (epochs, validation loss, test loss) per fold
    for k, (train, test) in enumerate(folds):
        for variant, groups in (("rows", None), ("scaffolds", scaffolds[train])):
            start = time.perf_counter()
            model = MultiTaskRegressor(random_state=0, **params).fit(
                X[train], Y[train], groups=groups)
            pred = model.predict(X[test])
            scores, losses = [], []
            for t in range(Y.shape[1]):
                seen = ~np.isnan(Y[test, t])
                truth, guess = Y[test, t][seen], pred[seen, t]
                scores.append(1 - np.sum((guess - truth) ** 2)
                              / np.sum((truth - truth.mean()) ** 2))
                losses.append(np.mean(((guess - truth) / np.nanstd(Y[train, t])) ** 2))
            r2[variant].append(scores)
            valid = min(model.net_.history[:, "valid_loss"])
            rest[variant].append((model.n_iter_, valid, np.mean(losses)))
            print(f"fold {k}, validation rows by {variant}: {model.n_iter_} epochs, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    rows, scaffold = np.array(r2["rows"]), np.array(r2["scaffolds"])
    gain = scaffold - rows
    se = gain.std(axis=0, ddof=1) / np.sqrt(len(folds))
    print("\ntarget   R^2 (rows)  R^2 (scaffolds)  gain (SE)")
    for t, name in enumerate(TARGETS.values()):
        print(f"{name:8} {rows[:, t].mean():10.3f}  {scaffold[:, t].mean():15.3f}  "
              f"{gain[:, t].mean():+.3f} ({se[t]:.3f})")
    print("\nvalidation rows by   epochs  validation loss  test loss")
    for variant, values in rest.items():
        epochs, valid, test_loss = np.mean(values, axis=0)
        print(f"{variant:19} {epochs:7.1f}  {valid:15.3f}  {test_loss:9.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two folds of two epochs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.quick)


if __name__ == "__main__":
    main()
