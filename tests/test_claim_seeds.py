"""The claim tests' seed sets: parsed strictly, at least five, and the default is 0-4."""

import pytest
from claim_seeds import DEFAULT, parse_seeds


def test_ranges_and_lists():
    assert parse_seeds(DEFAULT) == (0, 1, 2, 3, 4)
    assert parse_seeds("5-9") == (5, 6, 7, 8, 9)
    assert parse_seeds("0,2,4,6,8") == (0, 2, 4, 6, 8)
    assert parse_seeds("0-3, 10") == (0, 1, 2, 3, 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0-3", "at least 5"), ("a-b", "expected"), ("0-4,4", "each seed once"), ("5-", "expected")],
)
def test_bad_seed_sets_say_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)
