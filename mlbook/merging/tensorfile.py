"""A safetensors file read and written one tensor at a time, so that a merge holds only the tensors it is working on.

The format: 8 bytes (little-endian u64) N, then N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [b, e]}}``
(plus ``"__metadata__"``), then the tensors' bytes back to back, offsets counted from the end of the header.

- :class:`Reader` reads a tensor's bytes with ``pread`` into a fresh tensor.  ``safetensors.safe_open`` maps the
  whole file instead, and every page a merge touches then counts in the process's resident memory: three
  models read through mappings cost three models' worth of RSS, though each tensor is used once.
- :class:`Writer` writes the header first — the names, dtypes and shapes of a merge's output are known before any
  tensor is computed — and then each tensor as soon as it exists, so no output shard is ever held whole.

Files written here load with ``safetensors`` and ``from_pretrained``; tests check both directions.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
CODES = {v: k for k, v in DTYPES.items()}


def read_header(path: str | Path) -> tuple[dict, int]:
    """(the header's tensor entries without ``__metadata__``, the byte offset where the data starts)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def _nbytes(dtype: torch.dtype, shape) -> int:
    return math.prod(int(s) for s in shape) * dtype.itemsize


def _as_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of tensor ``t`` (any dtype, bfloat16 included), without a copy when it is contiguous."""
    return memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


class Buffers:
    """Tensors handed back after use, for the next read of the same dtype and shape.

    A fresh tensor is fresh memory: every page is faulted in and zeroed by the kernel on first touch, and
    large ones are returned to the system when freed (glibc maps them one by one), so a merge that reads every
    tensor into new memory pays for that again at each one — reading chapter 8's three models took 0.5–1.1 s
    into new tensors, 0.21 s into reused ones. A model repeats a few shapes (one per kind of layer tensor), so
    buffers of those shapes are kept; shapes in ``keep`` only, so that a tensor that occurs once (the embedding)
    is not held after its use."""

    def __init__(self, keep=None):
        self.keep = None if keep is None else set(keep)
        self.free: dict[tuple, list[torch.Tensor]] = {}

    @classmethod
    def for_specs(cls, specs) -> Buffers:
        """Buffers that keep the (dtype, shape) of ``specs`` (``(name, dtype, shape)`` triples) occurring twice or more."""
        from collections import Counter

        count = Counter((dt, tuple(sh)) for _, dt, sh in specs)
        return cls(keep=[key for key, n in count.items() if n > 1])

    def take(self, dtype: torch.dtype, shape) -> torch.Tensor:
        got = self.free.get((dtype, tuple(shape)))
        return got.pop() if got else torch.empty(tuple(shape), dtype=dtype)

    def give(self, *tensors: torch.Tensor) -> None:
        """Hand tensors back (each once, however many names it was given under); the caller holds no other use."""
        seen = {t.data_ptr() for ts in self.free.values() for t in ts}
        for t in tensors:
            key = (t.dtype, tuple(t.shape))
            if (self.keep is None or key in self.keep) and t.is_contiguous() and t.storage_offset() == 0 \
                    and t.untyped_storage().nbytes() == t.numel() * t.element_size() and t.data_ptr() not in seen:
                self.free.setdefault(key, []).append(t)
                seen.add(t.data_ptr())


class Reader:
    """``Reader(path).get(name)``: one tensor, read from the file into memory of its own (no mapping)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries, self.start = read_header(self.path)
        self._fd = os.open(self.path, os.O_RDONLY)

    def keys(self):
        return self.entries.keys()

    def spec(self, name: str) -> tuple[torch.dtype, tuple]:
        e = self.entries[name]
        return DTYPES[e["dtype"]], tuple(e["shape"])

    def get(self, name: str, buffers: Buffers | None = None) -> torch.Tensor:
        """Tensor ``name`` in memory of its own: a fresh tensor, or one handed back to ``buffers`` earlier."""
        e = self.entries[name]
        b, end = e["data_offsets"]
        dtype, shape = DTYPES[e["dtype"]], tuple(e["shape"])
        out = buffers.take(dtype, shape) if buffers is not None else torch.empty(shape, dtype=dtype)
        view, got = _as_bytes(out), 0
        if len(view) != end - b:
            raise ValueError(f"{self.path}: {name} has {end - b} bytes, but {dtype} × {shape} needs {len(view)}")
        while got < len(view):  # pread may return fewer bytes than asked
            n = os.preadv(self._fd, [view[got:]], self.start + b + got)
            if n == 0:
                raise ValueError(f"{self.path} ends inside tensor {name}")
            got += n
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Writer:
    """``Writer(path, [(name, dtype, shape), …])``, then ``write(name, tensor)`` for each, in that order.

    The header is written at once from the declared specs; each ``write`` appends its tensor's bytes and checks it
    against its declaration.  ``close`` fails if a declared tensor was never written (the file would be invalid)."""

    def __init__(self, path: str | Path, specs: list[tuple[str, torch.dtype, tuple]], metadata: dict | None = None):
        self.path = Path(path)
        header, offset = {}, 0
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        self.specs = {}
        for name, dtype, shape in specs:
            if name in self.specs:
                raise ValueError(f"tensor {name!r} appears twice in the specs")
            n = _nbytes(dtype, shape)
            header[name] = {"dtype": CODES[dtype], "shape": [int(s) for s in shape], "data_offsets": [offset, offset + n]}
            self.specs[name] = (dtype, tuple(int(s) for s in shape), n)
            offset += n
        self.order = list(self.specs)
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned, as safetensors' own writer does it
        self._f = open(self.path, "wb")
        self._f.write(struct.pack("<Q", len(blob)) + blob)
        self._next = 0

    def write(self, name: str, t: torch.Tensor) -> None:
        if self._next >= len(self.order) or self.order[self._next] != name:
            want = self.order[self._next] if self._next < len(self.order) else "nothing more"
            raise ValueError(f"write({name!r}): the next tensor declared is {want!r}")
        dtype, shape, n = self.specs[name]
        if t.dtype != dtype or tuple(t.shape) != shape:
            raise ValueError(f"write({name!r}): declared {dtype} × {shape}, got {t.dtype} × {tuple(t.shape)}")
        self._f.write(_as_bytes(t))
        self._next += 1

    def close(self) -> None:
        if self._f is None:
            return
        self._f.close()
        self._f = None
        if self._next != len(self.order):
            self.path.unlink(missing_ok=True)
            raise ValueError(f"{self.path}: {len(self.order) - self._next} declared tensors were never written "
                             f"(first: {self.order[self._next]!r}); the file was removed")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None and self._f is not None:  # an error mid-way: leave no half-written file
            self._f.close()
            self._f = None
            self.path.unlink(missing_ok=True)
            return
        self.close()
