"""Figures (PNG) of the recipe and the analysis, marked with who wrote them.

Each PNG carries the text chunk ``Software: speechbrain-tdy``, by which a
rerun knows the figure it may replace (:data:`FIGURE`); any other file of the
same name is left as it is (:mod:`speechbrain_tdy.storage.atomic`).
"""
from pathlib import Path

from speechbrain_tdy.storage.atomic import Replaceable, atomic_path

SOFTWARE = "speechbrain-tdy"
_MARK = b"tEXtSoftware\x00" + SOFTWARE.encode("ascii")


def is_our_figure(path):
    """Whether ``path`` is a PNG written by :func:`save_figure` (its marker is among the first chunks)."""
    with open(path, "rb") as stream:
        head = stream.read(1024)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and _MARK in head


#: The figures a rerun may replace.
FIGURE = Replaceable(f"a figure of {SOFTWARE} (a PNG with the text 'Software: {SOFTWARE}')", is_our_figure)


def save_figure(figure, path, **savefig):
    """Write the matplotlib ``figure`` to ``path`` as a marked PNG, atomically;
    an existing ``path`` is replaced only if it is one of these figures.

    >>> import tempfile, matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> path = save_figure(plt.figure(), tempfile.mkdtemp() + "/plot.png")
    >>> is_our_figure(path), save_figure(plt.figure(), path) == path
    (True, True)
    """
    path = Path(path)
    with atomic_path(path, FIGURE) as partial:
        figure.savefig(partial, format="png", metadata={"Software": SOFTWARE}, **savefig)
    return path
