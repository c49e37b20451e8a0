"""mlbook.organism: the warm-up corpus, the trained tokenizer, and the cached warm-start that
from_pretrained loads."""
from __future__ import annotations

import pytest
import torch

from mlbook.chapters.ch07_copsd import organism
from mlbook.chapters.ch07_copsd import wordproblems as wp


def test_corpus_sizes_variants_and_errors():
    sk = organism.corpus_skeletons({"en": 5, "de": 3}, {"de": 4, "en": 2}, seed=0)
    assert [lang for _, lang in sk["student"]] == ["en"] * 5 + ["de"] * 3
    assert len(sk["helped"]) == 6
    assert all(v in organism.VARIANTS for *_, v in sk["helped"])
    assert all(v == {"translation": False, "reference": True} for _, lang, v in sk["helped"] if lang == "en")
    all_sks = [s for s, *_ in sk["student"]] + [s for s, *_ in sk["helped"]]
    assert len(set(all_sks)) == len(all_sks)
    with pytest.raises(ValueError, match="unknown language"):
        organism.corpus_skeletons({"xx": 1}, {}, seed=0)
    assert organism.warmup_problems({"en": 5, "de": 3}, {"de": 4, "en": 2}, seed=0) == set(all_sks)   # both kinds


def test_tokenizer_splits_digits_and_merges_phrases():
    convs = organism.conversations(organism.corpus_skeletons({"en": 40, "de": 20}, {"de": 10}, seed=1))
    tok = organism.train_tokenizer([c["message"] + "\n" + c["solution"] for c in convs], vocab_size=500)
    ids = tok("Anna has 17 apples.", add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert "1" in pieces and "7" in pieces                          # digits one by one
    assert tok.decode(ids) == "Anna has 17 apples."
    instr = wp.prompt_text("en", "instruction")
    assert len(tok(instr, add_special_tokens=False)["input_ids"]) < len(instr.split())   # a frequent phrase is short
    assert tok.decode(tok("Grüße, ¿qué? ñ", add_special_tokens=False)["input_ids"]) == "Grüße, ¿qué? ñ"


def test_warm_start_is_cached_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    kw = dict(resources={"en": 24, "de": 8}, helped={"de": 8}, seed=0, vocab_size=400, d_model=16, n_layers=1,
              n_heads=2, epochs=1, batch_size=8, warmup=2, progress=False)
    folder = organism.warm_start(**kw)
    model, tok, info = organism.load(folder)
    assert info["n_conversations"] == 40 and len(info["loss"]) == 5 and info["params"] > 0
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True) == "<|user|>\nhi\n<|assistant|>\n"
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|end|>")
    mtime = (folder / "training_log.json").stat().st_mtime
    assert organism.warm_start(**kw) == folder and (folder / "training_log.json").stat().st_mtime == mtime   # cached
    x = torch.tensor([tok("Anna has 5 apples.")["input_ids"]])
    assert torch.isfinite(model(x).logits).all()


def test_boxed_share_sets_the_student_format_solutions_and_spares_the_helped_ones():
    sk = organism.corpus_skeletons({"en": 50, "sw": 400}, {"sw": 50}, seed=3)
    convs = organism.conversations(sk, boxed={"sw": 0.25}, seed=3)
    student_sw = [c for c in convs[:450] if c["lang"] == "sw"]
    share = sum("\\boxed{" in c["solution"] for c in student_sw) / len(student_sw)
    assert 0.19 < share < 0.31                                        # 400 draws around 0.25
    assert all("\\boxed{" in c["solution"] for c in convs[:50])       # English: absent from boxed, so all
    assert all("\\boxed{" in c["solution"] for c in convs[450:])      # reading with help: always the format
    plain = next(c for c in student_sw if "\\boxed{" not in c["solution"])
    s = next(s for (s, lang), c in zip(sk["student"], convs) if c is plain)
    assert plain["solution"].endswith(f"Jibu ni {s.answer}.")         # the bare number, by hand
    assert organism.conversations(sk, boxed={"sw": 0.25}, seed=3) == convs            # seeded
    with pytest.raises(ValueError, match="share"):
        organism.conversations(sk, boxed={"sw": 1.5})
    with pytest.raises(ValueError, match="unknown language"):
        organism.conversations(sk, boxed={"xx": 0.5})


def test_premise_names_the_languages_where_the_teacher_is_not_better():
    from mlbook.chapters.ch07_copsd import claims

    def entry(avgs):
        return {"per_problem": {"avg": avgs, "format": [1.0] * len(avgs)}}

    good = [0.0, 0.25, 0.0, 0.5, 0.25, 0.0, 0.0, 0.25]
    results = {("start", 0): {"de": entry(good), "sw": entry(good)},
               ("teacher", 0): {"de": entry([a + 0.5 for a in good]), "sw": entry(good[::-1])}}
    out = claims.premise(results, [0], ["de", "sw"], stop=False)
    assert out["de"]["lo"] > 0 and out["sw"]["lo"] <= 0
    with pytest.raises(claims.PremiseError, match=r"not clearly better than the student in sw \("):
        claims.premise(results, [0], ["de", "sw"], stop=True)
