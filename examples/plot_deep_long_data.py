"""
=====================================================================
A deep model on long data: memory, and saving it safely
=====================================================================

The Exam data hold one row per pupil and a column naming the pupil's school: long format,
one label per row. Seen as a wide target, it would be a ``(4,059 pupils, 65 schools)``
matrix with 98 % of its entries missing; Chem97 (31,022 pupils, 2,410 schools) would be a
matrix 600 MB in float64 for 31,022 labels. The deep estimators never build it: they hold the
labels as ``(row, task, label)`` triples and the loss reads each row's own school's output.

We fit :class:`~skmtl.deep.MultiTaskRegressor` on the long data, measure the peak memory of
the fit against the size of its input and against the wide matrix it avoids, and save the
fitted model with skops, whose loader runs no code from the file (see the user guide,
"Saving models" and "Scaling up").
"""

# %%
# The long data and the fit
# -------------------------
# ``task_ids`` names each row's school. A warm-up fit on a few rows first imports what a fit
# imports (torch's optimizer machinery), so that the measured peak is the fit's own.

import tracemalloc

import matplotlib.pyplot as plt
import numpy as np
import skops.io as sio

from skmtl.datasets import load_exam
from skmtl.deep import MultiTaskRegressor

X, y, schools = load_exam(return_X_y=True)
n_schools = len(np.unique(schools))
print(f"{X.shape[0]:,} pupils, {X.shape[1]} features, {n_schools} schools")

params = dict(hidden_layer_sizes=(64,), max_epochs=30, batch_size=128, random_state=0)
MultiTaskRegressor(**{**params, "max_epochs": 1}).fit(X[:50], y[:50], task_ids=schools[:50])

tracemalloc.start()
model = MultiTaskRegressor(**params).fit(X, y, task_ids=schools)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(f"{model.n_iter_} epochs; R^2 of each pupil's own school, on the training rows: "
      f"{model.score(X, y, task_ids=schools):.3f}")

# %%
# Memory: the input, the fit's peak, and the wide target it does not build
# ------------------------------------------------------------------------
# The peak counts every numpy buffer and Python object the fit allocates (:mod:`tracemalloc`);
# the network's own weights live in torch and do not grow with the rows. On data this small a
# fixed part weighs: the history keeps each school's training and validation loss of every
# epoch. On Chem97 (2,410 schools) the peak of an epoch is 1.85 times the input, where the
# wide target would be 420 times it (``benchmarks/memory.py``).

input_bytes = X.nbytes + y.nbytes + schools.nbytes
wide_bytes = X.shape[0] * n_schools * 8  # a float64 (n_pupils, n_schools) target
print(f"input {input_bytes / 2**10:.0f} KiB, peak of the fit {peak / 2**10:.0f} KiB "
      f"({peak / input_bytes:.2f}x the input), a wide target alone {wide_bytes / 2**10:.0f} KiB")
assert peak < wide_bytes

fig, ax = plt.subplots(figsize=(6, 2.6))
names = ["input (X, y, task_ids)", "peak of the fit", "a wide float64 target"]
ax.barh(names, np.array([input_bytes, peak, wide_bytes]) / 2**20, color=["C0", "C2", "C3"])
ax.set_xlabel("MiB")
ax.set_title("MultiTaskRegressor on long data (Exam, 65 schools)")
fig.tight_layout()

# %%
# Saving and loading with skops
# -----------------------------
# The network is saved as arrays (weights, history, the weighting's state), not as torch's
# byte streams: skops can read it, and lists the types it would build before it builds them.
# For a skmtl model expect skmtl names only; read the list before trusting it.

data = sio.dumps(model)
untrusted = sio.get_untrusted_types(data=data)
print("\n".join(untrusted))
assert all(name.startswith("skmtl.") for name in untrusted)
restored = sio.loads(data, trusted=untrusted)
same = np.array_equal(restored.predict(X, task_ids=schools), model.predict(X, task_ids=schools))
print(f"{len(data) / 2**10:.0f} KiB on disk; the loaded model predicts identically: {same}")
assert same
