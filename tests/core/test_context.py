"""mlbook.run, mlbook.cache, mlbook.cli and mlbook.scorecard: the harness itself."""
from __future__ import annotations

import json

import pytest

from mlbook.core import catalogue, context


# ---------------------------------------------------------------- run
def test_record_merges_atomically_and_refuses_objects(tmp_path):
    context.record(tmp_path, a=1, b=0.5)
    context.record(tmp_path, b=0.25, c=True)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1, "b": 0.25, "c": True}
    with pytest.raises(TypeError):
        context.record(tmp_path, bad=object())
    assert json.loads((tmp_path / "metrics.json").read_text())["b"] == 0.25


def test_record_converts_numpy_and_torch_scalars(tmp_path):
    import numpy as np
    import torch

    out = context.record(tmp_path, x=np.float32(0.5), y=torch.tensor(3), z=np.array(2.0))
    assert out == {"x": 0.5, "y": 3, "z": 2.0}


def test_profiles_and_sizes():
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        context.check_profile("laptop")
    stem = catalogue.list_chapters()[0]
    s = context.sizes(stem, "smoke")
    c = context.sizes(stem, "cpu")
    assert vars(s).keys() == vars(c).keys()
    key = next(iter(vars(s)))
    assert getattr(context.sizes(stem, "smoke", **{key: 123}), key) == 123
    with pytest.raises(ValueError, match="is not a size"):
        context.sizes(stem, "smoke", no_such_size=1)


def test_resolve_chapter_by_number_and_name():
    stem = catalogue.list_chapters()[0]
    assert catalogue.resolve_chapter(stem) == stem
    assert catalogue.resolve_chapter(stem[:2]) == stem
    assert catalogue.resolve_chapter(str(int(stem[:2]))) == stem
    with pytest.raises(ValueError, match="unknown chapter"):
        catalogue.resolve_chapter("99_nope")


def test_seed_everything_is_deterministic():
    import numpy as np
    import torch

    context.seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    context.seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_pick_device():
    assert context.pick_device("cpu") == "cpu"
    import torch

    assert context.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            context.pick_device("cuda")
