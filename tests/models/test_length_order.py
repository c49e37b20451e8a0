"""Length-sorted batches against cases worked by hand, and the round trip back to the input order."""
import random

import pytest

from mlbook.models.length_order import by_length, input_order


def test_by_length_by_hand():
    assert by_length([5, 1, 3, 1, 9], 2) == [[1, 3], [2, 0], [4]]   # the two 1s keep their order
    assert by_length([], 4) == []
    assert by_length([7], 3) == [[0]]


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_by_length_refuses_a_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        by_length([1, 2], bad)


def test_input_order_undoes_the_sort():
    rng = random.Random(0)
    for n, b in [(1, 1), (10, 3), (64, 8), (65, 64)]:
        lengths = [rng.randrange(1, 50) for _ in range(n)]
        batches = by_length(lengths, b)
        stacked = [lengths[i] for batch in batches for i in batch]
        assert stacked == sorted(lengths)
        assert [stacked[r] for r in input_order(batches)] == lengths


def test_input_order_refuses_a_broken_cover():
    with pytest.raises(ValueError, match="exactly once"):
        input_order([[0, 1], [1]])
