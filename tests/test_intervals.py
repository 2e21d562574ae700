"""RecBole's interval strings, checked before RecBole reads them."""
import pytest

from recbole_unlearn.utils.intervals import interval_problem


@pytest.mark.parametrize("text", ["(5,6)", "[2.5,2.9]", "(2,3);[4.1,4.9]", "[3,3)"])
def test_an_interval_without_a_whole_number_is_empty_for_counts(text):
    """Interaction counts are whole numbers: ``(5,6)`` passed the check and RecBole then ended in
    its own "Some feat is empty" line."""
    assert "holds no whole number" in interval_problem(text, counts=True) or "is empty" in \
        interval_problem(text, counts=True)


@pytest.mark.parametrize("text", ["(5,7)", "[5,5]", "[2.5,3]", "(4.9,inf)", "[-inf,1)", "[0,inf);(5,6]"])
def test_an_interval_with_a_whole_number_is_kept_for_counts(text):
    assert interval_problem(text, counts=True) is None


def test_a_float_field_interval_may_hold_no_whole_number():
    """A float field's ``val_interval`` (a rating of 3.5) filters values, not counts."""
    assert interval_problem("(5,6)") is None and interval_problem("[2.5,2.9]") is None
