"""
=====================================================================
A hierarchical model of schools: no grid search, learned shrinkage
=====================================================================

:class:`~skmtl.linear.HierarchicalRegressor` treats every school's coefficients as drawn
around a mean school, with a covariance learned from the data (the multi-task form of a linear
mixed model with a random intercept and random slopes, Bakker & Heskes 2003). The mean, the
covariance and the noise variance maximise the likelihood with the schools' deviations
integrated out (empirical Bayes), so there is no penalty to choose and no grid search; each
school then gets its posterior mean coefficients: a small school stays near the mean school,
a large one follows its own pupils.

On the Exam data (4,059 pupils in 65 London schools) we compare its held-out explained
variance with one ridge regression per school and with
:class:`~skmtl.linear.MeanClusteredRegressorCV` (which pulls every school to the mean by a
penalty chosen by cross-validation), and with its own diagonal variant
(``covariance_type="diag"``: independent deviations, for many features and few tasks), look at
how much it shrinks each school's slope, and draw the learned covariance of the schools'
deviations.
"""

# %%
# Held-out explained variance, 5 folds
# ------------------------------------
# The same seeded :class:`~skmtl.model_selection.MultiTaskKFold` folds for the four models
# (every school keeps pupils in every training fold);
# :func:`~skmtl.model_selection.cross_val_predict` gives each pupil the prediction of the
# fold's model that did not see the pupil, for the pupil's own school. One school has only
# two pupils, so two training folds hold one of them: its ridge regression is then the
# pupil's score as intercept and a zero slope whatever ``alpha``, and
# :class:`~sklearn.linear_model.RidgeCV`'s leave-one-out error of a single row is 0 / 0.
# scikit-learn warns (``invalid value encountered in divide``) and keeps its first alpha,
# which changes nothing; that warning alone is silenced.

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import explained_variance_score

from skmtl import IndependentTasks
from skmtl.datasets import load_exam
from skmtl.linear import HierarchicalRegressor, MeanClusteredRegressorCV
from skmtl.model_selection import MultiTaskKFold, cross_val_predict

exam = load_exam()
X, y, schools = exam.data, exam.target, exam.task_ids
models = {
    "one ridge per school": IndependentTasks(RidgeCV()),
    "MeanClusteredRegressorCV": MeanClusteredRegressorCV(),
    "HierarchicalRegressor": HierarchicalRegressor(),
    # independent slopes: 5 variances instead of 15 covariance entries (for many features)
    "... covariance_type='diag'": HierarchicalRegressor(covariance_type="diag"),
}
cv = MultiTaskKFold(5, shuffle=True, random_state=0)
scores = {}
for name, model in models.items():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value encountered in divide",
                                RuntimeWarning, module=r"sklearn\.linear_model\._ridge")
        # each pupil's prediction by the model of the fold that held the pupil out
        predicted = cross_val_predict(model, X, y, task_ids=schools, cv=cv)
    scores[name] = explained_variance_score(y, predicted)
    print(f"{name:26s} held-out explained variance {scores[name]:.4f}")

# no grid search, and at least as good as the cross-validated penalty
assert scores["HierarchicalRegressor"] > scores["one ridge per school"] + 0.01
assert scores["HierarchicalRegressor"] >= scores["MeanClusteredRegressorCV"] - 0.005
# independent slopes lose little here (0.463 against 0.465), with 5 variances to estimate
# instead of 15 covariance entries (the 4 features that vary within a school, and the
# intercept): the choice for many features and few tasks
assert scores["... covariance_type='diag'"] >= scores["HierarchicalRegressor"] - 0.005

# %%
# Learned shrinkage of the schools' slopes
# ----------------------------------------
# Fitted on all pupils: each school's coefficient of ``standLRT`` (the intake reading test),
# its own least-squares fit against the hierarchical model's posterior mean, by the number of
# pupils. The small schools' own slopes scatter widely; the hierarchical model pulls them
# towards the mean school, the more the fewer pupils a school has.

model = HierarchicalRegressor().fit(X, y, task_ids=schools)
feature = exam.feature_names.index("standLRT")
index = np.searchsorted(model.tasks_, schools)
n_pupils = np.bincount(index)
own = np.array([np.polyfit(X[index == t, feature], y[index == t], 1)[0]
                if n_pupils[t] > 2 else np.nan for t in range(model.n_tasks_)])
print(f"log-likelihood {model.log_likelihood_:.1f} after {model.n_iter_} iterations; "
      f"noise variance {model.noise_variance_:.3f}")
print(f"slope of standLRT: mean school {model.shared_coef_[feature]:.3f}; schools' own fits "
      f"spread {np.nanstd(own):.3f}, hierarchical {model.coef_[:, feature].std():.3f}")
assert model.coef_[:, feature].std() < 0.5 * np.nanstd(own)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
left.scatter(n_pupils, own, s=14, label="own least squares", color="tab:gray")
left.scatter(n_pupils, model.coef_[:, feature], s=14, label="hierarchical", color="tab:blue")
left.axhline(model.shared_coef_[feature], color="tab:blue", lw=1, ls="--", label="mean school")
left.set(xscale="log", xlabel="pupils in the school", ylabel="slope of standLRT",
         title="Each school's slope, shrunk by its size")
_ = left.legend(fontsize=8)

# %%
# The learned covariance of the schools' deviations
# -------------------------------------------------
# ``task_covariance_`` is the covariance of the deviations over the random slopes' features
# and the intercept (shown as correlations; each row gives its standard deviation). With the
# default ``random_slopes="all"``, only the features that vary within a school get a random
# slope: a school-level feature (the school's average intake score, its gender or type) is
# constant within each school, so a random slope on it would be a second random intercept.
# The schools differ most by their intercept and by the effect of a pupil's intake band
# ``intake=top 25%`` (standard deviations of about 0.30 each), then by that of
# ``intake=mid 50%`` (about half as much); the slope of the pupil's own reading score varies
# a little, that of the pupil's sex hardly at all.

covariance = model.task_covariance_
sd = np.sqrt(np.diag(covariance))
labels = [exam.feature_names[j] if j < X.shape[1] else "intercept"
          for j in model.random_columns_]
with np.errstate(invalid="ignore", divide="ignore"):
    correlation = covariance / np.outer(sd, sd)
image = right.imshow(np.where(np.outer(sd, sd) > 0, correlation, np.nan), cmap="RdBu_r",
                     vmin=-1, vmax=1)
right.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
right.set_yticks(range(len(labels)), [f"{lab} (sd {s:.2f})" for lab, s in zip(labels, sd)],
                 fontsize=7)
right.set_title("Correlation of the schools' deviations")
fig.colorbar(image, ax=right, shrink=0.8)
fig.tight_layout()
print("standard deviations of the deviations:",
      ", ".join(f"{lab} {s:.3f}" for lab, s in zip(labels, sd)))
assert "schavg" not in labels  # a school-level feature: no random slope
assert sd[-1] > 3 * sd[labels.index("standLRT")] > 3 * sd[labels.index("sex=M")]
top_intake, mid_intake = sd[labels.index("intake=top 25%")], sd[labels.index("intake=mid 50%")]
assert min(sd[-1], top_intake) > 1.5 * mid_intake
