"""The one check of a number read from a file or given by a caller."""
import math


def checked_number(value, where, kind=(int, float), low=-math.inf, high=math.inf):
    """``value`` if it is a finite number of ``kind`` (never a bool) in [low,
    high]; otherwise ValueError naming ``where`` (e.g. "FILE: key").

    >>> checked_number(3, "n", int, 1, 10)
    3
    >>> checked_number(10 ** 400, "threshold.json: threshold")
    Traceback (most recent call last):
    ...
    ValueError: threshold.json: threshold must be a finite number, got a 401-digit number
    """
    wanted = "an integer" if kind is int else "a finite number"
    if low > -math.inf or high < math.inf:
        wanted += f" in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{where} must be {wanted}, got {value!r:.60}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite or not low <= value <= high:
        shown = f"a {len(str(abs(value)))}-digit number" if isinstance(value, int) else f"{value!r:.60}"
        raise ValueError(f"{where} must be {wanted}, got {shown}")
    return value
