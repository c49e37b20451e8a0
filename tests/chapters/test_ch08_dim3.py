"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlbook.chapters.ch08_dim3 import evaluation, experiment, scenes, training, vision
from mlbook.models import llava
from tests.tiny import WordTokenizer
from tests.tiny import llama as _tiny_llama
from tests.tiny import llava as _tiny_llava


def test_scenes_are_seeded_and_consistent():
    a, b = scenes.sample_scenes(50, 7), scenes.sample_scenes(50, 7)
    assert a == b and a != scenes.sample_scenes(50, 8)
    assert np.array_equal(scenes.draw_many(a, 1), scenes.draw_many(b, 1))
    for s in a:
        assert len(s.cells) == s.count == len(set(s.cells)) and 1 <= s.count <= 4
        cols = {c for _, c in s.cells}
        assert cols <= ({0, 1} if s.side == "left" else {2, 3})


def test_scene_pixels_show_the_scene():
    s = scenes.Scene(colour="blue", shape="square", count=2, side="right", cells=((0, 2), (3, 3)))
    img = scenes.draw(s, np.random.default_rng(0)).astype(int)
    blue = (img[..., 2] > 150) & (img[..., 0] < 120)
    assert blue[:, : scenes.SIZE // 2].sum() == 0  # nothing on the left half
    for r, c in s.cells:  # a filled square of side ≥ 2·0.85·3.5 px in each of the two cells
        cell = blue[r * scenes.CELL:(r + 1) * scenes.CELL, c * scenes.CELL:(c + 1) * scenes.CELL]
        assert cell.sum() >= 25
    assert blue.sum() < 2 * (2 * 0.85 * 5 + 2) ** 2  # and nothing else


def test_scene_words():
    s = scenes.Scene(colour="red", shape="triangle", count=3, side="left", cells=((0, 0), (1, 0), (2, 1)))
    assert scenes.describe(s) == "The picture shows three red triangles on the left."
    assert scenes.describe(scenes.Scene("green", "circle", 1, "right", ((0, 2),))) == \
        "The picture shows one green circle on the right."
    assert scenes.answer(s, "de", "colour") == "rot" and scenes.answer(s, "ru", "count") == "три"
    assert scenes.answer(s, "zh", "shape") == "三角形" and scenes.answer(s, "es", "side") == "izquierda"
    t = scenes.templates()
    for lang, spec in t["languages"].items():  # every language: four questions, answer lists parallel to the attributes
        assert set(spec["questions"]) == set(scenes.KINDS), lang
        for k in scenes.KINDS:
            assert len(spec["answers"][k]) == len(t["attributes"][k]) == len(set(spec["answers"][k])), (lang, k)
    with pytest.raises(ValueError, match="choose from"):
        scenes.check_languages(["de", "xx"])


def test_scene_items_are_parallel_across_languages():
    sc = scenes.sample_scenes(8, 0)
    its = scenes.items(sc, ["en", "de", "hi"])
    assert len(its) == 24
    by = {(it["lang"], it["scene"]): it for it in its}
    for i, s in enumerate(sc):
        kinds = {by[(lang, i)]["kind"] for lang in ("en", "de", "hi")}
        assert kinds == {scenes.KINDS[i % 4]}
        assert len({by[(lang, i)]["gold"] for lang in ("en", "de", "hi")}) == 1
        it = by[("de", i)]
        assert it["candidates"][it["gold"]] == it["answer"]




def test_prompt_ids_expand_one_placeholder():
    tok = WordTokenizer()
    assert llava.image_token(tok) == "<image>"
    ids = vision.prompt_ids(tok, "what colour", n_image=4, image_id=5)
    assert ids == [1, 5, 5, 5, 5, 4, 6, 7, 4]  # BOS, 4 image placeholders, newline, question, newline
    assert vision.prompt_ids(tok, "what colour", context="context") == [1, 13, 4, 6, 7, 4]
    assert vision.prompt_ids(tok, "what colour", first=False) == [6, 7, 4]  # a later turn: no BOS


def test_conversation_trains_on_answers_only():
    e = vision.conversation([([1, 5, 5, 6], [11]), ([7, 4], [12, 10])], end=2, pixels=torch.zeros(3))
    assert e["input_ids"] == [1, 5, 5, 6, 11, 2, 7, 4, 12, 10, 2]
    assert e["loss_mask"] == [0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1]
    assert torch.equal(e["pixels"], torch.zeros(3))


def test_answer_loss_equals_masked_cross_entropy():
    m = _tiny_llama(2)
    ex = [vision.example([7, 8, 9], [10, 11], end=2), vision.example([7], [12, 13, 14], end=2)]
    batch = vision.collate(ex, pad_id=0)
    labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
    want = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    assert torch.allclose(vision.answer_loss(m, batch), want, atol=1e-5)
    # and for a LLaVA model with images in the batch
    v = _tiny_llava(m)
    ex = [vision.example([5] * 4 + [7, 8], [10, 11], 2, torch.randn(3, 24, 24)),
          vision.example([5] * 4 + [9], [12], 2, torch.randn(3, 24, 24))]
    batch = vision.collate(ex, pad_id=0)
    labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
    want = v(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
             pixel_values=batch["pixel_values"], labels=labels).loss
    assert torch.allclose(vision.answer_loss(v, batch), want, atol=1e-5)


def test_align_projector_moves_only_the_projector():

    lm = _tiny_llama(9)
    v = _tiny_llava(lm)
    for p in v.parameters():
        p.requires_grad_(False)
    for p in v.model.multi_modal_projector.parameters():
        p.requires_grad_(True)
    before = {k: x.clone() for k, x in v.state_dict().items()}

    class Tok:  # answer words → distinct ids of the tiny vocabulary
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [10 + sum(map(ord, text)) % 50]}

    sc = scenes.sample_scenes(64, 3)
    px = llava.pixel_values(scenes.draw_many(sc, 3))[:, :, ::2, ::2].contiguous()  # 24 × 24 for the tiny tower
    hist = vision.align_projector(v, Tok(), sc, px, steps=30, lr=1e-2, batch_size=16, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    for k, x in v.state_dict().items():
        assert torch.equal(x, before[k]) != ("multi_modal_projector" in k), k


def test_lm_weights_are_copies_and_set_lm_round_trips():
    lm = _tiny_llama(7)
    v = _tiny_llava(_tiny_llama(8))
    names = set(lm.state_dict())
    wv, wb = evaluation.lm_weights(v, names), evaluation.lm_weights(lm, names)
    assert set(wv) == names
    assert wb["lm_head.weight"].data_ptr() == wb["model.embed_tokens.weight"].data_ptr()  # the tie survives the copy
    before = {k: x.clone() for k, x in wv.items()}
    vision = {k: x.clone() for k, x in v.state_dict().items() if "vision" in k or "projector" in k}
    evaluation.set_lm(v, wb)  # writes into v's parameters …
    assert all(torch.equal(wv[k], before[k]) for k in wv)  # … and the copies taken before do not move
    ids = torch.tensor([[7, 8, 9]])
    assert torch.allclose(v(input_ids=ids).logits, lm(input_ids=ids).logits, atol=1e-5)
    assert all(torch.equal(v.state_dict()[k], x) for k, x in vision.items())  # vision parts untouched
    with pytest.raises(ValueError, match="do not fit"):
        evaluation.set_lm(v, {"model.nope.weight": torch.zeros(1)})


def test_grid_label_and_multilingual():
    g = experiment.grid({"ties": {"density": [0.3, 0.7], "lam": [1.0]}, "dim3": {}})
    assert g == [("ties", {"density": 0.3, "lam": 1.0}), ("ties", {"density": 0.7, "lam": 1.0}), ("dim3", {})]
    assert experiment.label("ties", {"lam": 1.0, "density": 0.3}) == "ties(density=0.3, lam=1.0)"
    assert experiment.multilingual({"en": 1.0, "de": 0.5, "ru": 0.25}) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="unknown merge method"):
        experiment.grid({"average": {}})




TINY = dict(n_images=64, vision_steps=3, align_steps=3, vqa_scenes=8, batch_size=2, lr_projector=1e-3, lr_lm=1e-3,
            vision_batch=16, progress=False, portable=False)  # in this process: monkeypatching reaches the loop


def test_vision_model_is_cached_loadable_and_resumes(tiny_lm_dir, tmp_path, monkeypatch):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path / "a"))
    v_dir = training.train_vision_model(str(tiny_lm_dir), 0, vqa_steps=12, **TINY)
    v = LlavaForConditionalGeneration.from_pretrained(v_dir)
    assert AutoProcessor.from_pretrained(v_dir).image_token == "<jupyter_output>"
    assert training.train_vision_model(str(tiny_lm_dir), 0, vqa_steps=12, **TINY) == v_dir  # cached: same folder
    assert not list(v_dir.parent.glob(".ckpt-*"))  # the checkpoints of a finished build are gone

    # a run killed after step 11 leaves its step-10 checkpoint; the next call resumes there and ends
    # with the same weights as the uninterrupted run above
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path / "b"))
    calls = {"n": 0}
    real = vision.answer_loss

    def dying(model, batch):
        calls["n"] += 1
        if calls["n"] > 11:
            raise KeyboardInterrupt("killed")
        return real(model, batch)

    monkeypatch.setattr(vision, "answer_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        training.train_vision_model(str(tiny_lm_dir), 0, vqa_steps=12, **TINY)
    ckpts = list((tmp_path / "b" / "dim3").glob("V-*.ckpt/step-*"))
    assert [p.name for p in ckpts] == ["step-000010"]
    monkeypatch.setattr(vision, "answer_loss", real)
    resumed = LlavaForConditionalGeneration.from_pretrained(training.train_vision_model(str(tiny_lm_dir), 0, vqa_steps=12, **TINY))
    for (k, a), (_, b) in zip(v.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_portable_parents_train_in_a_child_with_pinned_kernels(tiny_lm_dir, tmp_path, monkeypatch):
    """``portable=True`` (the default) on a CPU trains in a child process whose kernels are ``PORTABLE_CPU``:
    its weights equal, bit for bit, those of the same build run in-process by a Python started with those
    kernels; the log says which kernels trained it, and the cache key keeps the two kinds apart."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from mlbook.training.cached import read_log

    kw = dict(text_scenes=2, steps=3, batch_size=2, udhr_per_batch=1, lr_lm=1e-3, progress=False)
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path / "child"))
    child = training.train_multilingual_model(str(tiny_lm_dir), ["en", "de"], 0, **kw)
    assert read_log(child)["cpu_kernels"] == "AVX2"

    code = (f"import json, sys, torch; torch.set_num_threads({torch.get_num_threads()}); "
            "from mlbook.chapters.ch08_dim3 import training; "
            f"print(training.train_multilingual_model({str(tiny_lm_dir)!r}, ['en', 'de'], 0, portable=False, "
            "**json.loads(sys.argv[1])))")
    env = {**os.environ, **training.PORTABLE_CPU, "MLBOOK_CACHE": str(tmp_path / "pinned")}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kw)], env=env, capture_output=True, text=True,
                         check=True)
    pinned = Path(out.stdout.strip().splitlines()[-1])
    assert read_log(pinned)["cpu_kernels"] == "AVX2"
    assert child.name != pinned.name                                   # "avx2" vs "native" in the key
    a, b = load_file(child / "model.safetensors"), load_file(pinned / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_seed_records_every_number_of_the_card(tiny_lm_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mlbook.core.catalogue import chapter_card


    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    langs = ["en", "de", "zh"]
    S = SimpleNamespace(n_val=2, n_test=3, n_udhr=1, n_sim=2, **{k: v for k, v in TINY.items() if k not in ("progress", "portable")})
    grid = {"task_arithmetic": {"lambdas": [[1.0, 1.0], [0.5, 0.5]]}, "ties": {"density": [0.5]},
            "dare": {"p": [0.5]}, "breadcrumbs": {"density": [0.7]}}
    results = {}
    for seed in (0, 1):
        v_dir = training.train_vision_model(str(tiny_lm_dir), seed, vqa_steps=2, **TINY)
        m_dir = training.train_multilingual_model(str(tiny_lm_dir), langs, seed, text_scenes=2, steps=2, batch_size=2,
                                              udhr_per_batch=1, lr_lm=1e-3, progress=False, portable=False)
        results[seed] = experiment.run_seed(str(tiny_lm_dir), langs, seed, S, grid, v_dir, m_dir, progress=False)
    r = results[0]
    assert set(r["test"]) == {"B", "V", "M", "task_arithmetic", "ties", "dare", "breadcrumbs", "dim3"}
    # only task arithmetic has several configurations: only it is swept on validation
    assert set(r["val"]) == {experiment.label(m, kw) for m, kw in experiment.grid(grid) if m == "task_arithmetic"}
    assert r["best"]["ties"]["val"] is None and r["best"]["task_arithmetic"]["val"] is not None
    assert len(r["sim"]["V"]["vqa"]) == 4  # embeddings + 3 layers
    m = experiment.summarise(results)
    m.update(experiment.claim_units(results))
    card = chapter_card("08_dim3")["metrics"]
    computed_elsewhere = {"n_langs", "n_test_items", "tower_accuracy", "v_final_loss", "m_final_loss", "train_seconds", "playground_update_seconds",
                          "saved_merge_max_logit_diff"}  # recorded by the notebook itself
    missing = sorted(set(card) - set(m) - computed_elsewhere)
    assert not missing, missing
    for k in card:
        if k in m:
            spec = card[k].get("smoke", card[k].get("all")) if isinstance(card[k], dict) else card[k]
            lo, hi = spec
            assert (lo is None or m[k] >= lo) and (hi is None or m[k] <= hi), (k, m[k])
    # the summary is what it says: a mean over seeds of per-seed numbers
    want = np.mean([experiment.multilingual(results[s]["test"]["dim3"]["vqa"]) for s in (0, 1)])
    assert m["dim3_mvqa"] == pytest.approx(want)


def test_evaluate_names_what_it_cannot_ask():
    from mlbook.chapters.ch08_dim3.evaluation import Suite, evaluate

    suite = Suite(langs=["en", "de"])
    with pytest.raises(ValueError, match="languages"):
        evaluate(None, None, suite, "test", kinds={"vqa": ["fr"]})
    with pytest.raises(ValueError, match="kinds"):
        evaluate(None, None, suite, "test", kinds={"audio": ["en"]})


def test_each_model_is_asked_what_the_numbers_read():
    langs = ["en", "de", "zh"]
    assert experiment.asked("V", langs) == experiment.asked("dim3", langs) == {"vqa": langs, "text": ["de", "zh"]}
    assert experiment.asked("B", langs) == {"text": ["de", "zh"]}
    assert experiment.asked("ties", langs) == experiment.asked("M", langs) == {"vqa": ["de", "zh"], "text": ["de", "zh"]}
