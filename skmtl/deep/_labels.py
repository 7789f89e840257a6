"""The observed labels of the deep estimators as ``(row, task, value)`` triples.

The deep estimators never hold an ``(n_samples, n_tasks)`` array of targets or of the mask of
observed labels: on long data (one label per row, 2,410 school tasks) it would be almost all
empty, and on PCBA-shaped wide data (128 assays, 90 % missing) mostly so. The labels are held
as triples, grouped by row as a CSR matrix groups its entries: the labels of row ``i`` are the
entries ``indptr[i]:indptr[i + 1]`` of ``task`` and ``value``, in increasing task order. Wide
targets with missing labels become one triple per observed label; long data one triple per row.

A batch carries its labels as a dict of three tensors (``"row"``: the label's position in the
batch, ``"task"``, ``"value"``) in batch order: :class:`~skmtl.deep._net.TaskLoss` gathers each
label's own task output from the heads' outputs.
"""

import numpy as np
import torch

from skmtl.utils.validation import group_rows_by_task

__all__ = ["TaskLabels", "batch_labels", "label_rows"]


class TaskLabels:
    """Observed labels as triples grouped by row.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n_samples + 1,)
        The labels of row ``i`` are the entries ``indptr[i]:indptr[i + 1]``.
    task : ndarray of int, shape (n_labels,)
        Each label's task position.
    value : ndarray, shape (n_labels,)
        Each label's value (a target, or a class code).
    n_tasks : int
        Number of tasks.
    """

    def __init__(self, indptr, task, value, n_tasks):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.task = np.asarray(task)
        self.value = np.asarray(value)
        self.n_tasks = int(n_tasks)

    @classmethod
    def from_wide(cls, values, mask):
        """The observed entries of a wide ``(n_samples, n_tasks)`` target, row by row."""
        n_samples, n_tasks = mask.shape
        rows, tasks = np.nonzero(mask)  # row-major: by row, then by task
        return cls(_indptr(rows, n_samples), tasks.astype(_task_dtype(n_tasks)),
                   values[rows, tasks], n_tasks)

    @classmethod
    def from_long(cls, values, task_index, n_tasks):
        """Long data: row ``i`` has one label, of task ``task_index[i]``."""
        n_samples = len(task_index)
        indptr = np.arange(n_samples + 1, dtype=np.int64)
        return cls(indptr, np.asarray(task_index, dtype=_task_dtype(n_tasks)), values, n_tasks)

    @property
    def n_samples(self):
        return self.indptr.shape[0] - 1

    def with_values(self, value):
        """The same triples with other values (e.g. encoded targets)."""
        return TaskLabels(self.indptr, self.task, value, self.n_tasks)

    def positions(self, rows):
        """``(entries, local)``: the labels of ``rows`` in that order, and each one's position
        in ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        local = np.repeat(np.arange(rows.shape[0]), lengths)
        offsets = np.cumsum(lengths) - lengths
        entries = np.arange(local.shape[0]) + np.repeat(starts - offsets, lengths)
        return entries, local

    def counts(self, rows=None):
        """Number of labels of each task among ``rows`` (all rows when None)."""
        task = self.task if rows is None else self.task[self.positions(rows)[0]]
        return np.bincount(task, minlength=self.n_tasks)

    def labelled(self, rows):
        """The rows among ``rows`` with at least one label."""
        rows = np.asarray(rows, dtype=np.int64)
        return rows[self.indptr[rows + 1] > self.indptr[rows]]

    def task_positions(self, rows):
        """Per task, the positions (into ``rows``) of the rows with a label of that task."""
        entries, local = self.positions(rows)
        # local increases along the entries, so each task's positions stay in increasing order
        return [local[group] for group in group_rows_by_task(self.task[entries], self.n_tasks)]

    def keep_tasks(self, keep):
        """The labels of the tasks where ``keep`` (bool, ``(n_tasks,)``) is True; the task
        positions are unchanged."""
        selected = np.asarray(keep, dtype=bool)[self.task]
        kept = np.concatenate([[0], np.cumsum(selected, dtype=np.int64)])
        indptr = kept[self.indptr]  # labels kept before each row's first
        return TaskLabels(indptr, self.task[selected], self.value[selected], self.n_tasks)

    def take(self, rows, tasks):
        """The labels of ``rows`` (renumbered ``0, ..., len(rows) - 1``) and of ``tasks``
        (renumbered by their position in ``tasks``)."""
        rows = np.asarray(rows, dtype=np.int64)
        tasks = np.asarray(tasks, dtype=np.int64)
        new = np.full(self.n_tasks, -1, dtype=np.int64)
        new[tasks] = np.arange(tasks.shape[0])
        entries, local = self.positions(rows)
        task = new[self.task[entries]]
        selected = task >= 0
        return TaskLabels(
            _indptr(local[selected], rows.shape[0]),
            task[selected].astype(_task_dtype(tasks.shape[0])),
            self.value[entries[selected]], tasks.shape[0],
        )


def _indptr(label_rows, n_rows):
    """The ``indptr`` of labels sorted by row, from each label's row."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(label_rows, minlength=n_rows), out=indptr[1:])
    return indptr


def _task_dtype(n_tasks):
    return np.int16 if n_tasks <= np.iinfo(np.int16).max else np.int32


def batch_labels(labels, rows, task=None):
    """The labels of a batch of ``rows`` as the dict of tensors a batch carries.

    With ``task`` an int, only that task's labels are kept (task sampling); with ``task`` an
    array of one task per row, row ``i`` keeps only the label of task ``task[i]``.
    """
    entries, local = labels.positions(rows)
    tasks = labels.task[entries]
    if task is not None:
        owner = task if np.ndim(task) == 0 else np.asarray(task)[local]
        keep = tasks == owner
        entries, local, tasks = entries[keep], local[keep], tasks[keep]
    return {
        "row": torch.from_numpy(local),
        "task": torch.from_numpy(tasks.astype(np.int64)),
        "value": torch.from_numpy(np.ascontiguousarray(labels.value[entries], dtype=np.float32)),
    }


def label_rows(row, task, n_tasks):
    """Each task's labelled rows in a batch, padded: indices and validity, both ``(T, n)``.

    ``row`` and ``task`` are a batch's labels (in batch order); ``n`` is the largest number of
    labels of a task (at least 1). Rows are in batch order; padding repeats row 0, marked
    invalid.
    """
    counts = torch.bincount(task, minlength=n_tasks)
    n = max(int(counts.max()) if task.numel() else 0, 1)
    order = torch.argsort(task, stable=True)
    sorted_task = task[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(task.shape[0], device=task.device) - starts[sorted_task]
    index = torch.zeros(n_tasks, n, dtype=torch.long, device=task.device)
    valid = torch.zeros(n_tasks, n, dtype=torch.bool, device=task.device)
    index[sorted_task, rank] = row[order]
    valid[sorted_task, rank] = True
    return index, valid
