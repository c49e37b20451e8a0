"""The streamed merge's kernels (mlbook.merging.fast) against the readable definitions (mlbook.merging.methods):
bit for bit, on random weights, on weights with many tied values, in place or not; and the sampled-bracket
selection against a sort, including data that defeats the sample (the full partition must answer)."""
import pytest
import torch

from mlbook.merging import fast, methods


def _weights(shape, seed, tied=False):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(shape, generator=g)
    if tied:  # task vectors with many equal entries: the top-k boundary falls inside a run of ties
        return b, [b + 0.01 * torch.randint(-3, 4, shape, generator=g).float() for _ in range(3)]
    return b, [b + 0.02 * torch.randn(shape, generator=g) for _ in range(2)]


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("density,lam", [(0.5, 1.0), (0.2, 0.7)])
def test_ties_kernel_equals_the_readable_definition(tied, density, lam):
    for shape in ((37, 23), (300,), (64, 48)):
        b, thetas = _weights(shape, 3, tied)
        want = methods.ties(b, [th - b for th in thetas], density, lam)
        assert torch.equal(fast.ties(b, thetas, density, lam), want)
        copies = [th.clone() for th in thetas]
        assert torch.equal(fast.ties(b, copies, density, lam, consume=True), want)  # in place: same numbers


@pytest.mark.parametrize("tied", [False, True])   # the trim's mask by threshold, and by the tie rule
def test_ties_kernel_in_slices_equals_one_slice(monkeypatch, tied):
    b, thetas = _weights((64, 48), 8, tied=tied)
    want = methods.ties(b, [th - b for th in thetas], 0.5, 0.8)
    monkeypatch.setattr(fast, "CHUNK", 100)  # 31 slices, the last one short
    assert torch.equal(fast.ties(b, thetas, 0.5, 0.8), want)


def test_ties_kernel_leaves_its_inputs_alone_unless_consuming():
    b, thetas = _weights((20, 10), 4)
    before = [th.clone() for th in thetas]
    fast.ties(b, thetas, 0.5)
    assert all(torch.equal(x, y) for x, y in zip(thetas, before))
    fast.ties(b, thetas, 0.5, consume=True)
    assert not torch.equal(thetas[0], before[0])


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("t,c", [(1.0, 1.0), (0.5, 1.2)])
def test_dim3_kernel_equals_the_readable_definition(transpose, t, c):
    b, thetas = _weights((40, 24), 5)
    want = methods.dim3_merge_tensor(b, thetas, t, c, transpose=transpose)
    assert torch.equal(fast.dim3_merge_tensor_fast(b, thetas, t, c, transpose=transpose), want)
    got = fast.dim3_merge_tensor_fast(b, [th.clone() for th in thetas], t, c, transpose=transpose, consume=True)
    assert torch.equal(got, want) and got.is_contiguous()


def test_value_at_rank_brackets_and_falls_back(monkeypatch):
    import numpy as np

    monkeypatch.setattr(methods, "SAMPLE", 1024)  # tensors above 8192 entries take the bracketed path
    real_partition, sizes = np.partition, []

    def spy(a, r):  # records how many entries each selection partitions
        sizes.append(a.size)
        return real_partition(a, r)

    monkeypatch.setattr(np, "partition", spy)
    g = torch.Generator().manual_seed(6)
    # a matrix whose columns differ in scale, flattened (an evenly strided sample would see few of its columns)
    cols = (torch.randn(400, 50, generator=g) * torch.linspace(0.01, 3, 50)).reshape(-1)
    cases = [(torch.randn(20000, generator=g), True), (cols, True),
             (torch.randint(-3, 4, (16000,), generator=g).float(), False)]   # few distinct values: wide brackets
    for x, narrow in cases:
        srt = torch.sort(x).values
        for r in (0, 1, len(x) // 3, len(x) // 2, len(x) - 2, len(x) - 1):
            sizes.clear()
            assert float(methods.value_at_rank(x, r)) == float(srt[r]), (r,)
            if narrow:  # the bracket held: only the entries inside it were partitioned
                assert sizes and max(sizes) < len(x) // 4, (r, sizes)
    # a sample that misrepresents the tensor (its largest values): the bracket misses, the full partition answers
    monkeypatch.setattr(methods, "_sample", lambda flat: torch.sort(flat).values[-methods.SAMPLE:])
    x = torch.randn(20000, generator=g)
    sizes.clear()
    assert float(methods.value_at_rank(x, 1000)) == float(torch.sort(x).values[1000])
    assert sizes[-1] == 20000
    monkeypatch.undo()
    x = torch.randn(2000, generator=g)
    want = torch.zeros(2000, dtype=torch.bool)
    want[torch.argsort(x, stable=True)[100:1500]] = True
    assert torch.equal(methods.rank_window(x, 100, 1500), want)
