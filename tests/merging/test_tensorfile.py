"""mlbook.merging.tensorfile against the safetensors library: files either writes, the other reads."""
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mlbook.merging import tensorfile


def tensors():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(5, 3, generator=g), "half": torch.randn(7, generator=g).to(torch.bfloat16),
            "f16": torch.randn(2, 2, generator=g).half(), "ids": torch.arange(4, dtype=torch.int64),
            "mask": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4)}


def test_reader_reads_what_safetensors_wrote(tmp_path):
    ts = tensors()
    save_file(ts, str(tmp_path / "a.safetensors"), metadata={"format": "pt"})
    with tensorfile.Reader(tmp_path / "a.safetensors") as r:
        assert set(r.keys()) == set(ts)
        for name, t in ts.items():
            got = r.get(name)
            assert got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t), name
            assert r.spec(name) == (t.dtype, tuple(t.shape))


def test_safetensors_reads_what_the_writer_wrote(tmp_path):
    ts = tensors()
    path = tmp_path / "b.safetensors"
    with tensorfile.Writer(path, [(n, t.dtype, tuple(t.shape)) for n, t in ts.items()], {"format": "pt"}) as w:
        for name, t in ts.items():
            w.write(name, t.T.contiguous().T if name == "w" else t)  # "w" as a non-contiguous view
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        for name, t in ts.items():
            assert torch.equal(f.get_tensor(name), t), name
    n = int.from_bytes(path.read_bytes()[:8], "little")
    assert (8 + n) % 8 == 0  # the data starts aligned


def test_the_writer_refuses_what_it_was_not_told(tmp_path):
    path = tmp_path / "c.safetensors"
    specs = [("a", torch.float32, (2,)), ("b", torch.float32, (3,))]
    with pytest.raises(ValueError, match="next tensor declared is 'a'"):
        with tensorfile.Writer(path, specs) as w:
            w.write("b", torch.zeros(3))
    assert not path.exists()  # no half-written file is left behind
    with pytest.raises(ValueError, match=r"declared torch.float32 × \(2,\)"):
        with tensorfile.Writer(path, specs) as w:
            w.write("a", torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="never written"):
        with tensorfile.Writer(path, specs) as w:
            w.write("a", torch.zeros(2))
    assert not path.exists()


def test_buffers_reuse_only_kept_shapes_once_each(tmp_path):
    from mlbook.merging.tensorfile import Buffers, Reader, Writer

    a, b = torch.arange(6.0).reshape(2, 3), torch.ones(4)
    with Writer(tmp_path / "x.safetensors", [("a", a.dtype, a.shape), ("b", b.dtype, b.shape)]) as w:
        w.write("a", a)
        w.write("b", b)
    pool = Buffers(keep=[(torch.float32, (2, 3))])
    with Reader(tmp_path / "x.safetensors") as r:
        x = r.get("a", pool)
        ptr = x.data_ptr()
        pool.give(x, x, x.T, r.get("b", pool))  # twice, a view, a shape not kept: one buffer back
        assert sum(len(v) for v in pool.free.values()) == 1
        x.fill_(-1)
        y = r.get("a", pool)  # into the handed-back memory, every byte read again
        assert y.data_ptr() == ptr and torch.equal(y, a)
        assert r.get("a", pool).data_ptr() != ptr  # the pool is empty again: a fresh tensor
