import inspect

from skmtl.utils._docstring import Substitution, substitute

_BLOCKS = {
    "tol": """
    tol : float, default=1e-6
        Stopping tolerance.

        Second paragraph.
    """,
}


def test_block_is_indented_like_its_placeholder():
    @Substitution(**_BLOCKS)
    class Model:
        """A model.

        Parameters
        ----------
        alpha : float
            Strength.
        {tol}

        Returns {0, 1} labels.
        """

    assert inspect.cleandoc(Model.__doc__) == inspect.cleandoc("""A model.

        Parameters
        ----------
        alpha : float
            Strength.
        tol : float, default=1e-6
            Stopping tolerance.

            Second paragraph.

        Returns {0, 1} labels.
        """)


def test_unknown_placeholder_and_no_docstring_stay():
    assert substitute("    {other}\n", _BLOCKS) == "    {other}\n"
    assert substitute(None, _BLOCKS) is None


def test_shared_task_attributes_are_numpydoc():
    from skmtl.utils._docstring import SHARED_DOCS

    doc = substitute("    Attributes\n    ----------\n    {task_attributes}\n",
                     SHARED_DOCS)
    assert doc.splitlines()[2] == "    tasks_ : ndarray of shape (n_tasks,)"
    assert doc.splitlines()[3].startswith("        Task labels: column positions")
