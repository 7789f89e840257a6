"""Cross-validation splitters that keep every task observed in every training fold."""

import warnings
from numbers import Integral

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length

from skmtl.utils.validation import (
    _format_tasks,
    check_multitask_target,
    encode_groups,
    encode_target_classes,
)

__all__ = ["MultiTaskGroupKFold", "MultiTaskKFold"]

# Cost components, most important first: a stratum confined to one test fold (so absent from
# that training fold), task level then class level; then test folds missing a stratum that has
# enough labels to appear in them, task level then class level.
_N_LEVELS = 4
# Upper bound on candidate moves the repair step examines, so that unrepairable data cannot
# make ``split`` slow.
_REPAIR_BUDGET = 2_000_000
# Labels of a stratum, per fold, that the repair step tries to move.
_REPAIR_ROWS = 16
# Greedy passes tried while a stratum stays confined, within a total of stratum entries.
_MAX_ATTEMPTS = 10
_ATTEMPT_ENTRIES = 200_000


class MultiTaskKFold(BaseCrossValidator):
    """K-fold cross-validator that keeps every task observed in every training fold.

    Splits the rows into ``n_splits`` test folds of (almost) equal size, like
    :class:`~sklearn.model_selection.KFold`, while stratifying on the tasks: every task keeps
    observed labels in every training fold, each task's labels are spread evenly over the
    test folds, and for classification tasks each class is spread evenly too (as
    :class:`~sklearn.model_selection.StratifiedKFold` does for one task), so that every
    training fold holds at least two classes of each task where the data allow.

    ``y`` may take any of the three target formats of skmtl: a 1-D ``y`` (one task), a wide
    ``Y (n_samples, n_tasks)`` with missing labels as NaN / None / ``pd.NA``, or a long ``y``
    with ``task_ids`` (one row per observed (sample, task) pair). ``task_ids`` is requested by
    default through metadata routing, so with ``sklearn.set_config(enable_metadata_routing=
    True)`` a search object or :func:`~sklearn.model_selection.cross_validate` passes it to
    ``split`` as well as to the estimator.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds. Must be at least 2.
    shuffle : bool, default=False
        Whether to randomise the assignment (row order within each task and class, order of
        the tasks, numbering of the folds). With ``shuffle=False`` the split is deterministic
        and each class of each task is cut into contiguous runs of rows, as in
        :class:`~sklearn.model_selection.StratifiedKFold`.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling when ``shuffle=True``; pass an int for reproducible splits. Must
        be None when ``shuffle=False``, as in :class:`~sklearn.model_selection.KFold`.
    classification : "auto", True or False, default="auto"
        Whether the labels are classes, to be stratified class by class within each task.
        ``"auto"``: a target holding text (strings) is classes in every task; a target of
        numbers is decided per task, by the rule of
        :func:`~sklearn.utils.multiclass.type_of_target` on the task's observed labels:
        numbers that are all integral (``0``, ``1.0``, ...) are classes (``"binary"`` /
        ``"multiclass"``); a task with any non-integral value is continuous. (A target that
        mixes text classes with continuous tasks is an error saying so.) Set False for
        integer-valued regression targets (counts, grades): each of their values would
        otherwise be stratified as a class (harmless, but it may warn about classes with one
        label). True requires class labels in every task.

    Notes
    -----
    **What is guaranteed.** Let ``K = n_splits`` and ``n_t`` the number of observed labels of
    task ``t``.

    1. Every row is in exactly one test fold; the test folds' sizes differ by at most 1.
    2. Every task needs ``n_t >= 2`` (else ``split`` raises ``ValueError`` naming the task).
       Every task then has an observed label in every training fold: its labels never all
       fall in the same test fold. A task with ``2 <= n_t < K`` is fine: its labels go to
       ``n_t`` different test folds, so each training fold misses at most one of them.
    3. For classification tasks, every class with at least 2 labels in a task has labels in
       every training fold, so every training fold holds at least two classes of a task with
       at least two classes of two or more labels. A training fold that would hold a single
       class of some task (a class with only one label) triggers a ``UserWarning`` naming the
       task by its label in ``y`` (its ``task_ids`` value, or its column: a DataFrame's
       column name, else its position). skmtl's linear and deep multi-task classifiers fit
       a task of one class; a single-task classifier that needs two classes, fitted on each
       task alone (``IndependentTasks(LogisticRegression())``), fails on it.
    4. Test folds: each task's (and each class's) label counts in the test folds differ by at
       most one, so a task with ``n_t >= K`` has labels in every test fold.

    For 1-D and long data (and a wide ``Y`` with at most one label per row), and for a wide
    regression ``Y`` in which all labelled rows observe the same tasks, all four hold exactly.
    Other wide data (rows observing several tasks) is a harder, hypergraph-colouring problem,
    and a split meeting every constraint need not exist: three tasks with two labels each on
    rows ``{0, 1}``, ``{1, 2}`` and ``{0, 2}`` cannot be cut into two folds that keep every
    task in both training folds. There, 1 and 2 hold whenever ``split`` returns; when it
    cannot meet 2, ``split`` raises a ``ValueError`` naming the tasks (the tests check, by
    brute force on small random cases, that it finds a split whenever one exists). 3 and
    the coverage part of 4 (a task with ``n_t >= K`` in every test fold) are aimed at, not
    proven; they held on every random case of the tests (wide ``Y`` with 70 % missing
    labels), where a task's counts in two test folds differed by at most 2, not 1.

    Rows without any label (wide ``Y``) are spread to balance the fold sizes. Per-task
    metrics such as R^2 need two test labels: a task with fewer than ``2 * K`` labels has
    test folds with a single one, where its score is undefined.

    **Algorithm.** The labels define strata: one per task and, for classification tasks, one
    per (task, class) pair. When the strata are nested (1-D and long data, where each row
    has at most one label), rows are sorted by task, then class (then row order, or a random
    order when shuffling) and dealt round-robin over the folds: every task and every class is
    a contiguous run of the sorted rows, so its counts per fold differ by at most one, and so
    do the fold sizes. With ``shuffle=False`` the folds are then reordered within each class
    so that each fold takes contiguous rows; on a 1-D regression target this gives exactly the
    folds of ``KFold(n_splits)``.

    Otherwise (wide data with rows observing several tasks) a greedy pass assigns one row at
    a time, in order of the size of the row's rarest stratum (smallest first), to the fold
    that, lexicographically: (a) does not put all labels of a task, then of a class, in one
    test fold; (b) does not leave a test fold without a task, then a class, that has enough
    labels left to reach it; (c) minimises ``sum_s c[s, k] / n_s`` over the row's strata
    ``s``, where ``c[s, k]`` counts the labels of ``s`` already in fold ``k`` and ``n_s`` its
    size (rare strata weigh most), plus the fold's share of rows; (d) is the smallest. Only
    folds that keep the sizes within one of each other are eligible. A repair pass then
    moves or swaps rows between folds (never breaking the size balance) while that reduces,
    lexicographically, the number of tasks and of classes confined to one test fold, the
    number of test folds missing a task or class that has labels to spare, and the spread
    ``sum_s sum_k (c[s, k] - n_s / K)^2 / n_s``. If a task or class is still confined, the
    greedy pass is retried (on small data) with other, seeded, tie-breaks, keeping the best
    split: the result is deterministic for a given ``random_state``, and with
    ``shuffle=False``.

    Without ``task_ids``, a 1-D ``y`` is one task, and the split is a stratified K-fold on
    it. For long data, pass ``task_ids``: with metadata routing disabled, search objects do
    not route it to the splitter, which then sees a single task.

    See Also
    --------
    sklearn.model_selection.KFold : K-fold without stratification.
    sklearn.model_selection.StratifiedKFold : K-fold stratified on the classes of one task.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.model_selection import MultiTaskKFold
    >>> Y = np.array([[0.1, np.nan], [0.4, 1.2], [np.nan, 0.7], [0.9, np.nan],
    ...               [np.nan, 0.3], [0.5, 0.8]])
    >>> cv = MultiTaskKFold(n_splits=2)
    >>> for train, test in cv.split(np.zeros((6, 1)), Y):
    ...     print("train:", train, "test:", test,
    ...           "labels per task in train:", (~np.isnan(Y[train])).sum(axis=0))
    train: [0 4 5] test: [1 2 3] labels per task in train: [2 2]
    train: [1 2 3] test: [0 4 5] labels per task in train: [2 2]

    Long data: one row per observed (sample, task) pair, with the task of each row.

    >>> y = np.array([0.3, 1.2, 0.4, 2.1, 1.5, 0.9, 2.2, 1.6])
    >>> task_ids = np.array(["a", "a", "a", "b", "b", "b", "b", "b"])
    >>> for train, test in MultiTaskKFold(n_splits=2).split(y[:, None], y, task_ids=task_ids):
    ...     print("test:", test, "tasks in train:", task_ids[train])
    test: [0 1 3 4] tasks in train: ['a' 'b' 'b' 'b']
    test: [2 5 6 7] tasks in train: ['a' 'a' 'b' 'b']

    Class labels are stratified within each task (here one task, as in StratifiedKFold):

    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> [test.tolist() for _, test in MultiTaskKFold(n_splits=2).split(y[:, None], y)]
    [[0, 1, 4, 5, 6], [2, 3, 7, 8, 9]]
    """

    # Request ``task_ids`` by default, as GroupsConsumerMixin requests ``groups``; ``groups``
    # stays UNUSED (inherited): the split ignores it.
    __metadata_request__split = {"task_ids": True}
    _confined_reason = "their few labels sit on rows shared with other small tasks."

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None, classification="auto"):
        if not isinstance(n_splits, Integral) or isinstance(n_splits, bool):
            raise ValueError(
                f"n_splits must be an integer; got {n_splits!r} of type {type(n_splits).__name__}."
            )
        if n_splits < 2:
            raise ValueError(
                "MultiTaskKFold needs at least two folds (one to train on, one to test on): "
                f"n_splits must be >= 2; got n_splits={n_splits}."
            )
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}.")
        if not shuffle and random_state is not None:
            raise ValueError(
                "Setting a random_state has no effect since shuffle is False. Leave "
                "random_state at its default (None), or set shuffle=True."
            )
        if not (classification == "auto" or isinstance(classification, bool)):
            raise ValueError(
                f"classification must be 'auto', True or False; got {classification!r}."
            )
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.random_state = random_state
        self.classification = classification

    def get_n_splits(self, X=None, y=None, groups=None, task_ids=None):
        """Return the number of splitting iterations, ``n_splits``.

        Parameters
        ----------
        X, y, groups, task_ids : object
            Always ignored, exist for compatibility.

        Returns
        -------
        n_splits : int
            The number of folds.
        """
        return self.n_splits

    def split(self, X, y, groups=None, task_ids=None):
        """Generate indices to split the rows into training and test sets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its number of rows is used.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            1-D target (one task, or long format with ``task_ids``), or wide target with
            missing labels as NaN / None / ``pd.NA``.
        groups : object
            Always ignored, exists for compatibility. To keep the rows of a group in one
            fold (a scaffold split, a sample's rows of long data), use
            :class:`MultiTaskGroupKFold`, with ``groups=`` in
            :func:`~skmtl.model_selection.transfer_report` and the other cross-validation
            functions.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format data. Requested by default through
            metadata routing.

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.

        Raises
        ------
        ValueError
            If ``n_splits`` exceeds the number of rows, if a task has fewer than 2 observed
            labels (the message names it), if the target is invalid, or if no split keeps
            every task in every training fold (wide data only; the message names the tasks).
        """
        return self._split(X, y, task_ids)

    def _split(self, X, y, task_ids=None, tasks=None, groups=None):
        """:meth:`split`; ``tasks``: the names of the wide ``y``'s columns in the messages (the
        linear ``*CV`` estimators pass the user's, where ``y`` is the array of the columns
        they kept)."""
        folds = self._test_folds(X, y, task_ids, tasks, groups)
        indices = np.arange(folds.shape[0])
        for k in range(self.n_splits):
            is_test = folds == k
            yield indices[~is_test], indices[is_test]

    # -- validation -----------------------------------------------------------------------

    def _check_target(self, y, task_ids):
        if y is None:
            raise ValueError(
                f"{type(self).__name__}.split needs y: the observed labels decide the folds."
            )
        name = f"{type(self).__name__}(classification={self.classification!r})"
        if self.classification == "auto":
            try:
                return check_multitask_target(y, task_ids, y_numeric=True,
                                              require_all_tasks=False)
            except ValueError as numeric_error:
                try:  # labels that are not numbers (strings): classes
                    return check_multitask_target(y, task_ids, y_numeric=False,
                                                  require_all_tasks=False)
                except ValueError as class_error:
                    raise ValueError(
                        f"{name} cannot read y as numbers ({numeric_error}) nor as class "
                        f"labels ({class_error}). It reads a target of numbers task by task "
                        "(integral: classes; else continuous) and one holding text as classes "
                        "in every task: split a target that mixes text classes with "
                        "continuous tasks in parts."
                    ) from None
        try:
            return check_multitask_target(y, task_ids, y_numeric=not self.classification,
                                          require_all_tasks=False)
        except ValueError as exc:
            what = "class labels" if self.classification else "numbers"
            raise ValueError(f"{name} reads the labels as {what}: {exc}") from None

    def _labels(self, target):
        """Observed entries (row, task), class code of each entry, and which tasks have classes.

        Entries come in row-major order. Codes index each task's sorted classes (0 for the
        entries of regression tasks).
        """
        rows, tasks, values = target.observations()
        numeric = values.dtype.kind in "biuf"
        if self.classification is False:
            return rows, tasks, np.zeros(rows.size, dtype=np.intp), np.zeros(target.n_tasks, bool)
        if self.classification is True or not numeric:
            is_class = np.ones(target.n_tasks, dtype=bool)
        else:  # type_of_target's rule for numbers: integral values are classes
            non_integral = np.bincount(tasks, weights=np.mod(values, 1) != 0,
                                       minlength=target.n_tasks)
            is_class = non_integral == 0
        if numeric:
            codes = _codes_within_tasks(values, tasks, target.n_tasks)
        else:
            codes = encode_target_classes(target)[0]
            codes = codes if codes.ndim == 1 else codes[rows, tasks]
        return rows, tasks, np.where(is_class[tasks], codes, 0), is_class

    def _observed(self, X, y, task_ids, tasks=None):
        """Validate the data: ``(target, rows, tasks, codes, is_class)`` of
        :meth:`_labels` (``tasks``: the names of the columns of a wide ``y``, or None)."""
        target = self._check_target(y, task_ids)
        if tasks is not None:
            target.tasks = np.asarray(tasks)
        n_samples, n_tasks = target.n_samples, target.n_tasks
        if X is not None:
            check_consistent_length(X, np.empty(n_samples))
        if self.n_splits > n_samples:
            raise ValueError(
                f"Cannot have number of splits n_splits={self.n_splits} greater than the "
                f"number of samples: n_samples={n_samples}."
            )
        rows, tasks, codes, is_class = self._labels(target)
        n_labels = np.bincount(tasks, minlength=n_tasks)
        few = n_labels < 2
        if few.any():
            counts = ", ".join(
                f"{_format_tasks([task])}: {count}"
                for task, count in zip(target.tasks[few][:5], n_labels[few][:5])
            )
            raise ValueError(
                f"Task(s) {_format_tasks(target.tasks[few])} have fewer than 2 observed labels "
                f"({counts}). {type(self).__name__} needs at least 2 per task so that every "
                "training fold keeps one; drop these tasks or collect more labels."
            )
        return target, rows, tasks, codes, is_class

    def _test_folds(self, X, y, task_ids, tasks=None, groups=None):
        """Validate the data and return the test fold of each row (``tasks``: the names of
        the columns of a wide ``y``, or None; ``groups`` unused)."""
        target, rows, tasks, codes, is_class = self._observed(X, y, task_ids, tasks)
        n_samples, n_tasks = target.n_samples, target.n_tasks
        rng = check_random_state(self.random_state) if self.shuffle else None
        n_observed = np.bincount(rows, minlength=n_samples)
        if (n_observed <= 1).all():
            # 1-D, long, or wide with one label per row: the strata are disjoint tasks with
            # their classes nested inside. Rows without a label form a last block.
            row_task = np.full(n_samples, n_tasks, dtype=np.intp)
            row_task[rows] = tasks
            row_label = np.zeros(n_samples, dtype=np.intp)
            row_label[rows] = codes
            folds = _deal(row_task, row_label, self.n_splits, rng)
        elif not is_class.any() and _same_tasks_in_labelled_rows(target.mask):
            # wide regression in which every labelled row observes the same tasks: one stratum
            folds = _deal((n_observed == 0).astype(np.intp), np.zeros(n_samples, np.intp),
                          self.n_splits, rng)
        else:
            strata = _Strata(n_samples, rows, tasks, codes, is_class)
            folds = _split_strata(strata, self.n_splits, rng)
        self._check_result(target, folds, rows, tasks, codes, is_class)
        return folds

    def _check_result(self, target, folds, rows, tasks, codes, is_class):
        """Raise if a task misses a training fold; warn if a training fold has one class."""
        K, n_tasks = self.n_splits, target.n_tasks
        counts = np.zeros((n_tasks, K), dtype=np.intp)
        np.add.at(counts, (tasks, folds[rows]), 1)
        confined = (counts == counts.sum(axis=1, keepdims=True)).any(axis=1)
        if confined.any():
            raise ValueError(
                f"{type(self).__name__} found no split with n_splits={K} in which task(s) "
                f"{_format_tasks(target.tasks[confined])} keep observed labels in every training "
                f"fold: {self._confined_reason} Use fewer splits, or drop or merge the smallest "
                "tasks."
            )
        if not is_class.any():
            return
        # classes of each task present in each training fold
        classes, class_index = np.unique(np.column_stack((tasks, codes)), axis=0,
                                         return_inverse=True)
        class_counts = np.zeros((classes.shape[0], K), dtype=np.intp)
        np.add.at(class_counts, (class_index.ravel(), folds[rows]), 1)
        in_train = (class_counts.sum(axis=1, keepdims=True) - class_counts) > 0
        n_train_classes = np.zeros((n_tasks, K), dtype=np.intp)
        np.add.at(n_train_classes, classes[:, 0], in_train)
        n_classes = np.bincount(classes[:, 0], minlength=n_tasks)
        single = is_class & (n_classes >= 2) & (n_train_classes < 2).any(axis=1)
        if single.any():
            warnings.warn(
                f"{type(self).__name__}: some training folds hold a single class of task(s) "
                f"{_format_tasks(target.tasks[single])}, because fewer than two of their "
                "classes have 2 or more observed labels (or, in wide data, no split spreads "
                "them). skmtl's linear and deep multi-task classifiers fit such folds; a "
                "classifier fitted on each task alone that needs two classes, such as "
                "IndependentTasks(LogisticRegression()), fails on them. Use fewer folds, or more "
                "labels of the rare class.",
                UserWarning,
                stacklevel=4,
            )


class MultiTaskGroupKFold(MultiTaskKFold):
    """K-fold over groups of rows that keeps every task observed in every training fold.

    The multi-task counterpart of :class:`~sklearn.model_selection.GroupKFold` and
    :class:`~sklearn.model_selection.StratifiedGroupKFold`: every group of rows (``groups``)
    falls whole in one test fold, and, as in :class:`MultiTaskKFold`, every task keeps
    observed labels in every training fold, each task's labels are spread over the test folds
    and so are the classes of classification tasks, as evenly as whole groups allow. Use it
    for a scaffold split of molecules (the groups: each molecule's Murcko scaffold), for long
    data where a sample has a row per task (the groups: the samples), or for any rows that are
    not independent (pupils of a class, visits of a patient).

    ``groups`` is requested by default through metadata routing, as by GroupKFold, and so is
    ``task_ids``; :func:`~skmtl.model_selection.transfer_report` and the other
    cross-validation functions of skmtl pass their ``groups=`` to it.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds. Must be at least 2, and at most the number of groups.
    shuffle : bool, default=False
        Whether to randomise the order in which groups of equal priority are placed and the
        tie-breaks between folds. With ``shuffle=False`` the split is deterministic.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling when ``shuffle=True``. Must be None when ``shuffle=False``.
    classification : "auto", True or False, default="auto"
        Whether the labels are classes, to be spread class by class within each task (as in
        :class:`MultiTaskKFold`).

    Notes
    -----
    **Algorithm.** The labels define the strata of :class:`MultiTaskKFold`: one per task and,
    for classification tasks, one per (task, class) pair. Groups are placed one at a time,
    those holding the rarest stratum first (then the largest groups first, as GroupKFold
    does), each in the fold that, lexicographically: (a) does not put the last labels of a
    task, then of a class, in the test fold that holds all its other labels (which would
    leave that training fold without it); (b) minimises the mean, over the group's labels,
    of ``c[s, k] / n_s`` (the share of the label's stratum ``s`` already in fold ``k``) plus
    the fold's rows, the group's included, over ``n_samples / n_splits``; (c) comes first in
    a fixed (or, with ``shuffle``, random) order; when as many groups are left as test
    folds are empty, each goes to an empty one. If a task is still confined to one test
    fold, the placement is retried with other seeded tie-breaks (up to 10 times) and the
    split with the fewest confined tasks, then classes, is kept.

    **What is guaranteed.** Every group is in exactly one test fold, and every row in one; no
    test fold is empty. A
    task whose labels sit in a single group cannot be in every training fold (a ValueError
    names it, as does one whose labels no placement found could spread); otherwise every
    task keeps labels in every training fold. The balance of the fold sizes and of each
    task's (and class's) labels over the test folds is aimed at, not guaranteed: large groups
    limit it. A training fold holding a single class of a task warns, as in
    :class:`MultiTaskKFold`.

    See Also
    --------
    MultiTaskKFold : The same without groups.
    sklearn.model_selection.GroupKFold : Groups whole, fold sizes balanced, tasks ignored.
    sklearn.model_selection.StratifiedGroupKFold : Groups whole, one 1-D ``y`` stratified.

    Examples
    --------
    Long data: 8 samples measured on two tasks, a row per (sample, task); the samples are the
    groups, so both rows of a sample fall in the same test fold.

    >>> import numpy as np
    >>> from skmtl.model_selection import MultiTaskGroupKFold
    >>> sample = np.repeat(np.arange(8), 2)
    >>> task_ids = np.tile(["a", "b"], 8)
    >>> y = np.arange(16.0)
    >>> cv = MultiTaskGroupKFold(n_splits=4)
    >>> for train, test in cv.split(y[:, None], y, groups=sample, task_ids=task_ids):
    ...     print("test samples:", np.unique(sample[test]), "tasks in train:",
    ...           np.unique(task_ids[train]))
    test samples: [0 4] tasks in train: ['a' 'b']
    test samples: [1 5] tasks in train: ['a' 'b']
    test samples: [2 6] tasks in train: ['a' 'b']
    test samples: [3 7] tasks in train: ['a' 'b']
    """

    __metadata_request__split = {"groups": True, "task_ids": True}
    _confined_reason = "their labels sit in too few groups."

    def split(self, X, y, groups=None, task_ids=None):
        """Generate indices to split the rows into training and test sets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; only its number of rows is used.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            1-D target (one task, or long format with ``task_ids``), or wide target with
            missing labels as NaN / None / ``pd.NA``.
        groups : array-like of shape (n_samples,)
            The group of each row; a group's rows fall in the same test fold.
        task_ids : array-like of shape (n_samples,), default=None
            The task of each row, for long-format data.

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.

        Raises
        ------
        ValueError
            If ``groups`` is None, has a missing value or another length than ``y``, if
            ``n_splits`` exceeds the number of groups, if a task has fewer than 2 observed
            labels, or if no split found keeps every task in every training fold (the
            messages name the tasks).
        """
        return self._split(X, y, task_ids, groups=groups)

    def _test_folds(self, X, y, task_ids, tasks=None, groups=None):
        """The test fold of each row, every group in one (``tasks`` as in MultiTaskKFold)."""
        if groups is None:
            raise ValueError(f"{type(self).__name__}.split needs groups, the group of each "
                             "row: a group's rows fall in the same test fold.")
        target, rows, tasks, codes, is_class = self._observed(X, y, task_ids, tasks)
        group_of_row, n_groups = encode_groups(groups, target.n_samples)
        if self.n_splits > n_groups:
            raise ValueError(
                f"Cannot have number of splits n_splits={self.n_splits} greater than the "
                f"number of groups: n_groups={n_groups}.")
        # the groups as items of the strata: one entry per label, repeated within a group
        strata = _Strata(n_groups, group_of_row[rows], tasks, codes, is_class)
        group_size = np.bincount(group_of_row, minlength=n_groups)
        rng = check_random_state(self.random_state) if self.shuffle else None
        group_fold = _split_strata(strata, self.n_splits, rng, place=lambda attempt_rng: (
            _greedy_groups(strata, group_size, self.n_splits, attempt_rng)))
        folds = group_fold[group_of_row]
        self._check_result(target, folds, rows, tasks, codes, is_class)
        return folds


def _greedy_groups(strata, group_size, n_splits, rng):
    """The test fold of each group (the items of ``strata``), placed one at a time: see
    :class:`MultiTaskGroupKFold`'s Notes."""
    K, n_groups, S = n_splits, strata.n_samples, strata.n_strata
    size = strata.size
    order = _rarest_first(strata, rng, larger=group_size)
    counts = np.zeros((S, K), dtype=np.int64)  # labels of each stratum in each test fold
    assigned = np.zeros(S, dtype=np.int64)
    fold_rows = np.zeros(K, dtype=np.int64)
    per_fold = group_size.sum() / K
    inv_size = 1.0 / np.maximum(size, 1)
    fold_index = np.arange(K)
    folds = np.empty(n_groups, dtype=np.intp)
    for placed, group in enumerate(order):
        # as many groups left as empty folds: each fills one (no test fold stays empty)
        empty = fold_rows == 0
        forced = (n_groups - placed <= np.count_nonzero(empty)) & ~empty
        s, m = np.unique(strata.of(group), return_counts=True)
        c = counts[s]
        done = assigned[s]
        # the group holds the last labels of s, all others being in one fold: that fold
        # would hold every label of s
        confine = ((size[s] - done == m) & (done >= 1))[:, None] & (c == done[:, None])
        is_task = strata.level[s] == 0
        spread = (m * inv_size[s]) @ c / max(m.sum(), 1)
        soft = spread + (fold_rows + group_size[group]) / per_fold
        rank = fold_index if rng is None else rng.permutation(K)
        best = np.lexsort((rank, soft, confine[~is_task].sum(axis=0),
                           confine[is_task].sum(axis=0), forced))[0]
        folds[group] = best
        counts[s, best] += m
        assigned[s] += m
        fold_rows[best] += group_size[group]
    return folds


def _codes_within_tasks(values, tasks, n_tasks):
    """Rank of each numeric label among the sorted distinct labels of its task."""
    order = np.lexsort((values, tasks))
    v, t = values[order], tasks[order]
    new_class = np.ones(v.size, dtype=bool)
    new_class[1:] = (t[1:] != t[:-1]) | (v[1:] != v[:-1])
    class_id = np.cumsum(new_class) - 1
    first_class_of_task = np.zeros(n_tasks, dtype=np.intp)
    first_class_of_task[t[::-1]] = class_id[::-1]  # the first write of a task wins
    codes = np.empty(v.size, dtype=np.intp)
    codes[order] = class_id - first_class_of_task[t]
    return codes


def _same_tasks_in_labelled_rows(mask):
    labelled = mask[mask.any(axis=1)]
    return bool((labelled == labelled[:1]).all())


def _deal(task, label, n_splits, rng):
    """Deal rows round-robin over folds, sorted by task then label (nested strata).

    Every (task) and (task, label) block is a contiguous run of the sorted rows, so dealing
    the sorted rows over the folds in turn gives each block, and the whole, counts per fold
    that differ by at most one.
    """
    n = task.shape[0]
    if rng is None:
        order = np.lexsort((np.arange(n), label, task))
    else:
        task_rank = rng.permutation(task.max() + 1)[task]
        label_rank = rng.permutation(label.max() + 1)[label]
        order = np.lexsort((rng.permutation(n), label_rank, task_rank))
    dealt = np.arange(n) % n_splits
    if rng is None:
        # Same counts per block and fold, but each block cut into contiguous runs.
        sorted_task, sorted_label = task[order], label[order]
        dealt = dealt[np.lexsort((dealt, sorted_label, sorted_task))]
    else:
        dealt = rng.permutation(n_splits)[dealt]
    folds = np.empty(n, dtype=np.intp)
    folds[order] = dealt
    return folds


class _Strata:
    """Row-to-stratum incidence: one stratum per task and per (task, class) pair.

    ``indptr`` / ``indices`` give each row's strata (CSR); ``size`` the labels per stratum;
    ``level`` is 0 for a task stratum and 1 for a class stratum.
    """

    def __init__(self, n_samples, rows, tasks, codes, is_class):
        n_tasks = is_class.shape[0]
        n_classes = np.zeros(n_tasks, dtype=np.intp)
        np.maximum.at(n_classes, tasks, codes + 1)
        n_classes[~is_class] = 0
        offset = n_tasks + np.concatenate(([0], np.cumsum(n_classes)[:-1]))
        keep = is_class[tasks]
        entry_rows = np.concatenate((rows, rows[keep]))
        entry_strata = np.concatenate((tasks, offset[tasks[keep]] + codes[keep]))
        order = np.lexsort((entry_strata, entry_rows))
        self.n_samples = n_samples
        self.n_strata = n_tasks + int(n_classes.sum())
        self.rows = entry_rows[order]
        self.indices = entry_strata[order]
        self.indptr = np.concatenate(([0], np.cumsum(np.bincount(self.rows,
                                                                 minlength=n_samples))))
        self.size = np.bincount(self.indices, minlength=self.n_strata)
        self.level = (np.arange(self.n_strata) >= n_tasks).astype(np.intp)

    def of(self, row):
        return self.indices[self.indptr[row]:self.indptr[row + 1]]


def _split_strata(strata, n_splits, rng, place=None):
    """Greedy assignment then repair; on small data, retry while a stratum stays confined.

    A confined stratum left by the repair step is a local optimum of a hard (hypergraph
    colouring) problem; new greedy passes with other tie-breaks (seeded, so deterministic
    when ``rng`` is None) often find a split without one. The best split found is returned.
    ``place(attempt_rng)``, if given, returns the test fold of each item of ``strata`` in
    place of the greedy pass and repair (:class:`MultiTaskGroupKFold`'s groups).
    """
    if place is None:
        def place(attempt_rng):
            folds = _greedy(strata, n_splits, attempt_rng)
            _repair(strata, folds, n_splits)
            return folds

    n_attempts = max(1, min(_MAX_ATTEMPTS, _ATTEMPT_ENTRIES // max(strata.indices.size, 1)))
    best, best_cost = None, None
    for attempt in range(n_attempts):
        attempt_rng = rng
        if rng is None and attempt > 0:
            attempt_rng = np.random.RandomState(attempt)
        folds = place(attempt_rng)
        counts = np.zeros((strata.n_strata, n_splits), dtype=np.int64)
        np.add.at(counts, (strata.indices, folds[strata.rows]), 1)
        cost = tuple(_stratum_costs(counts, strata.size, strata.level, n_splits).sum(axis=0))
        if best_cost is None or cost < best_cost:
            best, best_cost = folds, cost
        if best_cost[0] == best_cost[1] == 0:
            break
    return best


def _rarest_first(strata, rng, larger=None):
    """The order in which the greedy passes place the items of ``strata`` (rows, or groups):
    by their rarest stratum, ``(size, priority)`` as one integer (priority: the stratum's
    index, or a random rank), items without labels last; then, given ``larger`` (the items'
    sizes), the larger first; ties by index, or at random."""
    n, S = strata.n_samples, strata.n_strata
    priority = np.arange(S) if rng is None else rng.permutation(S)
    entry_key = strata.size[strata.indices].astype(np.int64) * S + priority[strata.indices]
    rarest = np.full(n, np.iinfo(np.int64).max)
    has = np.diff(strata.indptr) > 0
    if has.any():
        rarest[has] = np.minimum.reduceat(entry_key, strata.indptr[:-1][has])
    tie = np.arange(n) if rng is None else rng.permutation(n)
    return np.lexsort((tie, rarest) if larger is None else (tie, -larger, rarest))


def _greedy(strata, n_splits, rng):
    """Assign rows one by one, rarest stratum first, to the fold that spreads them best."""
    K, n, S = n_splits, strata.n_samples, strata.n_strata
    size = strata.size
    order = _rarest_first(strata, rng)
    fold_index = np.arange(K)

    counts = np.zeros((S, K), dtype=np.int64)  # labels of each stratum in each test fold
    assigned = np.zeros(S, dtype=np.int64)
    fold_size = np.zeros(K, dtype=np.int64)
    base, extra = divmod(n, K)
    inv_size = 1.0 / np.maximum(size, 1)
    cover_target = np.minimum(K, size)
    folds = np.empty(n, dtype=np.intp)
    for row in order:
        s = strata.of(row)
        n_big = np.count_nonzero(fold_size > base)
        eligible = (fold_size < base) | ((fold_size == base) & (n_big < extra))
        c = counts[s]
        done = assigned[s]
        left = size[s] - done  # unassigned labels of s, this row included
        is_task = strata.level[s] == 0
        # all labels of a stratum in one test fold (this row is its last)
        confine = ((left == 1) & (done >= 1))[:, None] & (c == done[:, None])
        # a test fold that already holds s, while every remaining label of s is needed to
        # reach the folds that do not
        need = cover_target[s] - np.count_nonzero(c, axis=1)
        waste = (c > 0) & (left <= need)[:, None]
        soft = inv_size[s] @ c + fold_size / n
        rank = fold_index if rng is None else rng.permutation(K)
        keys = (
            rank,
            fold_size,
            soft,
            waste[~is_task].sum(axis=0),
            waste[is_task].sum(axis=0),
            confine[~is_task].sum(axis=0),
            confine[is_task].sum(axis=0),
        )
        candidates = np.flatnonzero(eligible)
        best = candidates[np.lexsort(tuple(key[candidates] for key in keys))[0]]
        folds[row] = best
        counts[s, best] += 1
        assigned[s] += 1
        fold_size[best] += 1
    return folds


def _stratum_costs(counts, size, level, K):
    """Per-stratum cost components (n_strata, _N_LEVELS): confined, then missing folds."""
    confined = (size >= 2) & (counts.max(axis=1) == size)
    missing = np.minimum(K, size) - np.count_nonzero(counts, axis=1)
    out = np.zeros((counts.shape[0], _N_LEVELS), dtype=np.int64)
    rows = np.arange(counts.shape[0])
    out[rows, level] = confined
    out[rows, 2 + level] = missing
    return out


def _repair(strata, folds, n_splits):
    """Move or swap rows between folds while that lowers the cost of the split.

    The cost is, lexicographically, the cost components of :func:`_stratum_costs` summed over
    the strata, then the spread ``sum_s sum_k (c[s, k] - n_s / K)^2 / n_s``. Only strata whose
    counts differ by 2 or more between two folds can gain, so only those are examined (those
    with a confined or missing component first), and only moves of one of their labels from a
    fold where they are most numerous to one where they are least. Modifies ``folds`` in
    place. Fold sizes stay within one of each other: a single row moves only from a larger
    fold to a smaller one, otherwise two rows swap folds.
    """
    K, S = n_splits, strata.n_strata
    size, level = strata.size, strata.level
    counts = np.zeros((S, K), dtype=np.int64)
    np.add.at(counts, (strata.indices, folds[strata.rows]), 1)
    by_stratum = np.argsort(strata.indices, kind="stable")
    members = np.split(strata.rows[by_stratum], np.cumsum(size)[:-1])
    n_strata_of_row = np.diff(strata.indptr)
    budget = [_REPAIR_BUDGET]
    improved = True
    while improved and budget[0] > 0:
        improved = False
        costs = _stratum_costs(counts, size, level, K)
        uneven = np.flatnonzero(counts.max(axis=1) - counts.min(axis=1) >= 2)
        spread = (counts.max(axis=1) - counts.min(axis=1))[uneven] / size[uneven]
        keys = [-spread] + [-costs[uneven, j] for j in reversed(range(_N_LEVELS))]
        for s in uneven[np.lexsort(keys)]:
            if counts[s].max() - counts[s].min() < 2:
                continue
            move = _find_move(s, strata, members[s], n_strata_of_row, folds, counts, K, budget)
            if move is not None:
                improved = True
                for row, source, dest in move:
                    folds[row] = dest
                    counts[strata.of(row), source] -= 1
                    counts[strata.of(row), dest] += 1
            if budget[0] <= 0:
                return


def _find_move(s, strata, members, n_strata_of_row, folds, counts, K, budget):
    """Best move or swap of a label of stratum s that lowers the cost, or None."""
    size, level = strata.size, strata.level
    c = counts[s]
    sources = np.flatnonzero(c == c.max())
    dests = np.flatnonzero(c == c.min())
    fold_size = np.bincount(folds, minlength=K)
    costs = _stratum_costs(counts, size, level, K)
    entry_fold = folds[strata.rows]
    best, best_key = None, None
    for source in sources:
        rows = members[folds[members] == source]
        # rows with the fewest other strata disturb the least: try those first
        rows = rows[np.argsort(n_strata_of_row[rows], kind="stable")][:_REPAIR_ROWS]
        for row in rows:
            row_strata = strata.of(row)
            for dest in dests:
                # moving `row` from source to dest: change on its strata
                moved = counts[row_strata].copy()
                moved[:, source] -= 1
                moved[:, dest] += 1
                delta_row = np.append(
                    (_stratum_costs(moved, size[row_strata], level[row_strata], K)
                     - costs[row_strata]).sum(axis=0),
                    _spread_delta(counts[row_strata], size[row_strata], source, dest).sum(),
                )
                if fold_size[source] > fold_size[dest] and _improves(delta_row) and (
                        best_key is None or tuple(delta_row) < tuple(best_key)):
                    best_key, best = delta_row, [(int(row), source, dest)]
                # or swap with a row of dest moving to source, evaluated after the first move
                after = counts.copy()
                after[row_strata] = moved
                back = after.copy()
                back[:, dest] -= 1
                back[:, source] += 1
                unit = np.column_stack((
                    _stratum_costs(back, size, level, K) - _stratum_costs(after, size, level, K),
                    _spread_delta(after, size, dest, source),
                ))
                in_dest = entry_fold == dest
                partners = np.flatnonzero(folds == dest)
                entry_rows, entry_unit = strata.rows[in_dest], unit[strata.indices[in_dest]]
                total = np.column_stack([
                    np.bincount(entry_rows, weights=entry_unit[:, j],
                                minlength=strata.n_samples)[partners]
                    for j in range(_N_LEVELS + 1)
                ]) + delta_row
                budget[0] -= partners.size + strata.n_strata
                if partners.size == 0:
                    continue
                pick = np.lexsort(total.T[::-1])[0]
                if _improves(total[pick]) and (
                        best_key is None or tuple(total[pick]) < tuple(best_key)):
                    best_key = total[pick]
                    best = [(int(row), source, dest), (int(partners[pick]), dest, source)]
    return best


def _spread_delta(counts, size, source, dest):
    """Change of sum_k (c_k - n_s / K)^2 / n_s when one label moves from source to dest."""
    return (2.0 * (counts[:, dest] - counts[:, source]) + 2.0) / np.maximum(size, 1)


def _improves(key):
    """Whether a change of (cost components..., spread) lowers the cost lexicographically."""
    for value in key[:_N_LEVELS]:
        if value != 0:
            return value < 0
    return key[_N_LEVELS] < -1e-9
