"""RecBole's interval strings, checked before RecBole reads them."""
import pytest

from recbole_unlearn.utils.intervals import interval_problem


@pytest.mark.parametrize("text", ["(5,6)", "[2.5,2.9]", "(2,3);[4.1,4.9]", "[3,3)", "[inf,inf]", "[-inf,-inf]"])
def test_an_interval_without_a_whole_number_is_empty_for_counts(text):
    """Interaction counts are whole numbers: ``(5,6)`` passed the check and RecBole then ended in
    its own "Some feat is empty" line."""
    assert "holds no whole number" in interval_problem(text, counts=True) or "is empty" in \
        interval_problem(text, counts=True)


@pytest.mark.parametrize("text", ["(5,7)", "[5,5]", "[2.5,3]", "(4.9,inf)", "[-inf,2)", "[0,inf);(5,6]", "[0,1]",
                                  "(0,inf)", "[5,6);(6,7)", "[20,21);(22,22.5)", "(6,7);[0,1]"])
def test_an_interval_with_a_whole_number_is_kept_for_counts(text):
    """(RecBole keeps the union of ``;``-joined intervals: ``[5,6);(6,7)`` keeps users with 5
    interactions, and was refused because ``(6,7)`` alone is empty; r11fixes probe.)"""
    assert interval_problem(text, counts=True) is None


@pytest.mark.parametrize("text", ["[0,0]", "[0,1)", "[-inf,1)", "(-3,0.5]"])
def test_an_interval_of_no_count_above_zero_is_empty_for_counts(text):
    """Every user and item in the file has at least one interaction: ``[0,0]`` and ``[0,1)``
    dropped every row and ended in RecBole's own "Some feat is empty" line (r11fixes probe)."""
    assert "holds no count above 0" in interval_problem(text, counts=True)


def test_a_union_is_empty_only_where_every_part_is():
    problem = interval_problem("(6,7);[3,2]", counts=True)
    assert problem.startswith("every part of '(6,7);[3,2]' is empty ('(6,7)' holds no whole number") and \
        problem.endswith("so it would drop every row")
    assert interval_problem("(6,7);[3,2]") is None  # a float field's: (6,7) holds 6.5


def test_a_float_field_interval_may_hold_no_whole_number():
    """A float field's ``val_interval`` (a rating of 3.5) filters values, not counts."""
    assert interval_problem("(5,6)") is None and interval_problem("[2.5,2.9]") is None
