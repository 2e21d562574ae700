"""RecBole's interval strings (load-time filters), checked before RecBole reads them."""
import math
from typing import Optional


def interval_problem(text, counts: bool = False) -> Optional[str]:
    """What is wrong with a RecBole interval string (``user_inter_num_interval``,
    ``item_inter_num_interval``, a float field's ``val_interval``: intervals such as ``[5,inf)``
    joined by ``;``, which RecBole keeps the union of), or ``None`` (also for ``None``, no
    filter). RecBole warned and skipped a malformed interval, so ``[25,inf`` filtered nothing and
    was recorded as applied, and kept an empty one (``[30,20]``), which dropped every row. With
    ``counts`` (interaction counts, whole numbers, at least 1 for every user and item in the file)
    an interval holding no whole number (``(5,6)``) or none above 0 (``[0,1)``) is empty too. A
    union is refused only where every part of it is empty (``[5,6);(6,7)`` keeps 5; r11fixes
    probe)."""
    if text is None:
        return None
    parts, empty = str(text).split(";"), []
    for part in parts:
        part = part.strip()
        pair = part[1:-1].split(",")
        try:
            low, high = (float(point) for point in pair) if len(pair) == 2 else (math.nan, math.nan)
        except ValueError:
            low = high = math.nan
        if len(part) < 2 or part[0] not in "([" or part[-1] not in ")]" or math.isnan(low) or math.isnan(high):
            return (f"{part!r} is not an interval: give [low,high] with ( or ) for an open end, low and high numbers "
                    "or inf, several joined by ';' (e.g. '[5,inf)')")
        if low > high or low == high and (part[0] == "(" or part[-1] == ")"):
            empty.append(f"{part!r} is empty (no number lies within it)")
        elif counts and _no_whole_number(low, high, part[0] == "[", part[-1] == "]"):
            empty.append(f"{part!r} holds no whole number, and interaction counts are whole numbers")
        elif counts and _no_whole_number(max(low, 1.0), high, part[0] == "[" or low < 1, part[-1] == "]"):
            empty.append(f"{part!r} holds no count above 0, and every user and item in the file has one")
    if len(empty) == len(parts):
        return (f"{empty[0]}, so it would drop every row" if len(empty) == 1 else
                f"every part of {str(text)!r} is empty ({'; '.join(empty)}), so it would drop every row")
    return None


def _no_whole_number(low: float, high: float, low_closed: bool, high_closed: bool) -> bool:
    """Whether no whole number lies between ``low`` and ``high`` (either may be infinite:
    ``[inf,inf]`` and ``[-inf,-inf]`` hold none; r11round3 probe)."""
    if low == math.inf or high == -math.inf:
        return True
    if math.isinf(low) or math.isinf(high):
        return False
    first = math.ceil(low) if low_closed else math.floor(low) + 1
    last = math.floor(high) if high_closed else math.ceil(high) - 1
    return first > last
