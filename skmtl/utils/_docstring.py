"""Shared docstring text, written once and substituted into each docstring that uses it.

A docstring names a shared block with a placeholder alone on its line, ``{name}``, indented as the
block should be; :class:`Substitution` replaces the line by the block, every line of the block
indented like the placeholder. Braces that do not name a block (``{0, 1}``, a set of strings) are
left as they are, so docstrings need no escaping.

Example::

    _shared = {"tol": '''
        tol : float, default=1e-6
            Stopping tolerance.
        '''}

    @Substitution(**_shared)
    class Model:
        '''A model.

        Parameters
        ----------
        {tol}
        '''
"""

import re
import textwrap

__all__ = ["SHARED_DOCS", "Substitution", "join_blocks", "substitute"]

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>[A-Za-z_]\w*)\}[ \t]*$", re.MULTILINE)


def substitute(doc, blocks):
    """Return ``doc`` with each placeholder line ``{name}`` of ``blocks`` replaced by its block.

    Parameters
    ----------
    doc : str or None
        A docstring (None, under ``python -OO``, is returned as is).
    blocks : dict of str to str
        Block name -> text, written from a new line (a triple-quoted string that starts with a
        line break). Its common indentation and its leading and trailing blank lines are
        removed, then every line is indented like the placeholder. A placeholder whose name is
        not in ``blocks`` stays.

    Returns
    -------
    doc : str or None
    """
    if doc is None:
        return None

    def replace(match):
        name = match.group("name")
        if name not in blocks:
            return match.group(0)
        block = textwrap.dedent(blocks[name]).strip("\n")
        return textwrap.indent(block, match.group("indent"), lambda line: line.strip() != "")

    return _PLACEHOLDER.sub(replace, doc)


def join_blocks(*blocks):
    """One block made of several, in order, with no blank line between them."""
    return "\n" + "\n".join(textwrap.dedent(block).strip("\n") for block in blocks) + "\n"


class Substitution:
    """Decorator: fill the placeholders of a class's or function's docstring.

    Parameters
    ----------
    **blocks : str
        Block name -> text, see :func:`substitute`.
    """

    def __init__(self, **blocks):
        self.blocks = blocks

    def __call__(self, obj):
        obj.__doc__ = substitute(obj.__doc__, self.blocks)
        return obj


# Blocks every multi-task estimator shares (used by both wings and the baselines).
SHARED_DOCS = {
    "task_attributes": """
    tasks_ : ndarray of shape (n_tasks,)
        Task labels: column positions, a DataFrame's column names or the sorted ``task_ids``.
    n_tasks_ : int
        Number of tasks.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.
    """,
    # the data parameters of every estimator's fit
    "fit_data": """
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_tasks)
        1-D: a single task (or, with ``task_ids``, long format: one observed label per
        row). 2-D: one column per task, NaN / None / ``pd.NA`` for a missing label; a
        DataFrame's columns name the tasks.
    task_ids : array-like of shape (n_samples,), default=None
        The task of each row, for long-format data. Requested by default through metadata
        routing.
    """,
}
