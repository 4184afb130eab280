"""bench.growth's sizes, as typed on its command line and as its JSON names them."""

import argparse

import pytest

from bench.growth import parse_size, size_label


@pytest.mark.parametrize(
    ("text", "visits", "label"),
    [("1M", 1_000_000, "1M"), ("10m", 10_000_000, "10M"), ("2.5M", 2_500_000, "2500k"),
     ("100k", 100_000, "100k"), (" 50000 ", 50_000, "50k"), ("1234", 1_234, "1234")],
)  # fmt: skip
def test_a_size_is_read_and_named_back(text, visits, label):
    assert parse_size(text) == visits
    assert size_label(visits) == label


@pytest.mark.parametrize("text", ["", "M", "ten", "0", "-1M", "1G"])
def test_a_size_that_is_no_number_of_visits_is_refused_naming_it(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_size(text)
