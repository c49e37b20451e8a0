"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlbook.chapters.ch08_dim3 import evaluation, experiment, scenes, training, vision
from mlbook.interp import crosslingual
from mlbook.models import llava, loading, resolve
from mlbook.text import choice


def _tiny_llama(seed=0, vocab=64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def _tiny_llava(lm, seed=1, image_token_id=5):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    cfg = LlavaConfig(vision_config=llava.vision_config(hidden=16, layers=1, heads=2, image_size=24, patch=12).to_dict(),
                      text_config=lm.config.to_dict(), image_token_id=image_token_id,
                      vision_feature_select_strategy="full", vision_feature_layer=-1, image_seq_length=4)
    m = LlavaForConditionalGeneration(cfg)
    m.model.language_model.load_state_dict(lm.model.state_dict())
    m.tie_weights()
    return m.eval()


# ------------------------------------------------------------------ choice


def test_choice_fast_path_equals_definition_llama():
    m = _tiny_llama()
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(6, 64, (n,), generator=g).tolist() for n in (7, 2, 12, 5)]  # ragged: left padding
    cands = [[torch.randint(6, 64, (k,), generator=g).tolist() for k in ks] for ks in ([1, 3, 2], [2], [4, 1], [1, 1, 1, 1])]
    want = choice.score_naive(m, prompts, cands, end_id=2)
    for bs in (1, 3, 32):
        got = choice.score(m, prompts, cands, end_id=2, pad_id=0, batch_size=bs)
        assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4), bs


def test_choice_fast_path_equals_definition_llava_with_images():
    m = _tiny_llava(_tiny_llama())
    g = torch.Generator().manual_seed(4)
    px = torch.randn(3, 3, 24, 24, generator=g)
    prompts = [[5] * 4 + torch.randint(6, 64, (n,), generator=g).tolist() for n in (3, 6, 1)]
    cands = [[[10], [11, 12]], [[13, 14, 15]], [[16], [17], [18]]]
    want = choice.score_naive(m, prompts, cands, end_id=2, pixel_values=px)
    got = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px)
    assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4)
    # the image matters: another image, other scores
    other = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px.flip(0))
    assert not np.allclose(np.concatenate(other), np.concatenate(got), atol=1e-4)


def test_choice_shared_heads_equal_definition_llama():
    """Prompts grouped by a common head (run once per group) score as if each ran alone."""
    m = _tiny_llama()
    g = torch.Generator().manual_seed(5)
    heads = [torch.randint(6, 64, (n,), generator=g).tolist() for n in (6, 1, 9)]
    prompts, groups = [], []
    for h, head in enumerate(heads):
        for n in (1, 4, 2):  # ragged tails
            prompts.append(head + torch.randint(6, 64, (n,), generator=g).tolist())
            groups.append(f"g{h}")
    prompts.append(list(heads[0]))  # a prompt that is its head: one token goes to its tail
    groups.append("g0")
    cands = [[torch.randint(6, 64, (k,), generator=g).tolist() for k in (1, 3)] for _ in prompts]
    want = choice.score_naive(m, prompts, cands, end_id=2)
    for bs in (1, 4, 64):
        got = choice.score(m, prompts, cands, end_id=2, pad_id=0, batch_size=bs, groups=groups)
        assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4), bs
    assert choice._common_head([[1, 2, 3], [1, 2, 4, 5]]) == 2 and choice._common_head([[1, 2], [1, 2, 3]]) == 1
    with pytest.raises(ValueError, match="group labels"):
        choice.score(m, prompts, cands, end_id=2, groups=groups[:-1])


def test_choice_shared_heads_equal_definition_llava():
    m = _tiny_llava(_tiny_llama())
    g = torch.Generator().manual_seed(6)
    img = torch.randn(2, 3, 24, 24, generator=g)
    prompts = [[1] + [5] * 4 + torch.randint(6, 64, (n,), generator=g).tolist() for n in (3, 1, 5, 2)]
    groups = [0, 0, 1, 1]
    px = img[groups]  # prompts of a group: one image
    cands = [[[10], [11, 12]], [[13, 14, 15]], [[16], [17], [18]], [[19, 20]]]
    want = choice.score_naive(m, prompts, cands, end_id=2, pixel_values=px)
    got = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px, groups=groups)
    assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4)
    with pytest.raises(ValueError, match="share their image"):
        choice.score(m, prompts, cands, end_id=2, pixel_values=img[[0, 1, 0, 1]], groups=groups)
    with pytest.raises(ValueError, match="outside the shared head"):  # two prompts agree only on BOS
        choice.score(m, [[1, 5, 5, 5, 5, 7], [1, 9, 5, 5, 5, 5, 8]], [[[10]], [[11]]], end_id=2,
                     pixel_values=img[[0, 0]], groups=[0, 0])


def test_choice_merge_buckets_trades_padding_for_passes():
    few = choice._merge_buckets({1: [0], 2: [1], 3: [2]}, call_cost=96)  # three rows: one pass, padded to 3
    assert few == {3: [0, 1, 2]}
    many = choice._merge_buckets({1: list(range(500)), 9: [500]}, call_cost=96)  # padding 500 rows to 9 costs more
    assert many == {1: list(range(500)), 9: [500]}
    assert choice._merge_buckets({}, call_cost=96) == {}


def test_choice_accuracy():
    assert choice.accuracy([[0.0, -1.0], [-3.0, -2.0, -5.0], [1.0, 1.0]], [0, 1, 1]) == pytest.approx(2 / 3)
    assert np.isnan(choice.accuracy([], []))


# ------------------------------------------------------------------ scenes


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


# ------------------------------------------------------------------ vlm


class _Tok:
    """A whitespace tokenizer over a fixed vocabulary, with the few methods vlm uses."""

    def __init__(self):
        self.vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "\n", "<image>"] +
                                                 "what colour is the shape red blue context".split())}
        self.eos_token_id, self.unk_token_id, self.pad_token_id, self.bos_token_id = 2, 3, 0, 1

    def get_vocab(self):
        return self.vocab

    def convert_tokens_to_ids(self, t):
        return self.vocab.get(t, 3)

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.vocab.items()}[i]

    def __call__(self, text, add_special_tokens=False):
        out = []
        for line_i, line in enumerate(text.split("\n")):
            if line_i:
                out.append(4)
            out += [self.vocab.get(w, 3) for w in line.split()]
        return {"input_ids": out}


def test_prompt_ids_expand_one_placeholder():
    tok = _Tok()
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


def test_pixel_values_match_the_image_processor():
    imgs = scenes.draw_many(scenes.sample_scenes(3, 0), 0)
    from PIL import Image

    ref = llava.image_processor(48)(images=[Image.fromarray(x) for x in imgs], return_tensors="pt")["pixel_values"]
    assert torch.allclose(llava.pixel_values(imgs), ref, atol=1e-5)


def test_build_copies_the_language_model(tmp_path):
    from transformers import LlavaForConditionalGeneration, SiglipVisionModel

    lm = _tiny_llama(5, vocab=64)
    tok = _Tok()
    tower = SiglipVisionModel(llava.vision_config(hidden=16, layers=1, heads=2, image_size=24, patch=12))
    v = llava.build(lm, tower, tok)
    assert v.config.image_token_id == 5 and llava.n_image_tokens(v) == 4
    ids = torch.tensor([[7, 8, 9, 10]])
    assert torch.allclose(v(input_ids=ids).logits, lm(input_ids=ids).logits, atol=1e-5)  # text-only: the LM itself
    assert v.lm_head.weight.data_ptr() == v.model.language_model.embed_tokens.weight.data_ptr()
    v.save_pretrained(tmp_path / "v")
    w = LlavaForConditionalGeneration.from_pretrained(tmp_path / "v")
    px = torch.randn(1, 3, 24, 24)
    ids = torch.tensor([[5] * 4 + [7, 8]])
    assert torch.allclose(w(input_ids=ids, pixel_values=px).logits, v(input_ids=ids, pixel_values=px).logits, atol=1e-5)


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


# ------------------------------------------------------------------ crosslingual


def test_pooled_states_and_similarity():
    m = _tiny_llama(6)
    ids = [[7, 8, 9, 10], [11, 12]]
    pool = [[0, 1, 1, 0], [1, 1]]
    got = crosslingual.pooled_states(m, ids, pool, batch_size=1)
    assert got.shape == (2, 4, 32)
    with torch.no_grad():
        hs = m(input_ids=torch.tensor([ids[0]]), output_hidden_states=True).hidden_states
    want = torch.stack([h[0, 1:3].mean(0) for h in hs])
    assert torch.allclose(got[0], want, atol=1e-5)
    sim = crosslingual.layer_similarity(got, got)
    assert torch.allclose(sim, torch.ones(4), atol=1e-5)
    lo, mid, hi = crosslingual.thirds(30)
    assert (list(lo), list(mid), list(hi)) == (list(range(1, 11)), list(range(11, 21)), list(range(21, 31)))


# ------------------------------------------------------------------ dim3 plumbing


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


# ------------------------------------------------------------------ the cached fine-tunes, end to end on a tiny LM


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A tiny Llama with SmolLM2's tokenizer, as a local checkpoint folder (what `model` may name)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM



    tok = AutoTokenizer.from_pretrained(resolve.resolve("smollm2", "causal_lm"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    d = tmp_path_factory.mktemp("tiny-lm")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_truncated_backbone_keeps_the_first_layers(tiny_lm_dir, tmp_path, monkeypatch):
    """loading.truncated: the smoke profile's backbone — the real checkpoint's first layers, loadable, cached."""
    from transformers import AutoModelForCausalLM



    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    full = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    d = loading.truncated(str(tiny_lm_dir), 2)
    cut = AutoModelForCausalLM.from_pretrained(d)
    assert cut.config.num_hidden_layers == 2 and len(cut.model.layers) == 2
    sd, want = cut.state_dict(), full.state_dict()
    assert not any(k.startswith("model.layers.2.") for k in sd)
    for k, v in sd.items():
        assert torch.equal(v, want[k]), k
    # the same model as running the full one with its last layer skipped
    full.model.layers = full.model.layers[:2]
    full.config.num_hidden_layers = 2
    x = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(cut(input_ids=x).logits, full(input_ids=x).logits, atol=1e-6)
    assert loading.truncated(str(tiny_lm_dir), 2) == d  # cached
    for bad in (0, 4, 1.5):
        with pytest.raises(ValueError, match="n_layers"):
            loading.truncated(str(tiny_lm_dir), bad)


TINY = dict(n_images=64, vision_steps=3, align_steps=3, vqa_scenes=8, batch_size=2, lr_projector=1e-3, lr_lm=1e-3,
            vision_batch=16, progress=False)


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


def test_run_seed_records_every_number_of_the_card(tiny_lm_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mlbook.core.catalogue import chapter_card


    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    langs = ["en", "de", "zh"]
    S = SimpleNamespace(n_val=2, n_test=3, n_udhr=1, n_sim=2, **{k: v for k, v in TINY.items() if k != "progress"})
    grid = {"task_arithmetic": {"lambdas": [[1.0, 1.0], [0.5, 0.5]]}, "ties": {"density": [0.5]},
            "dare": {"p": [0.5]}, "breadcrumbs": {"density": [0.7]}}
    results = {}
    for seed in (0, 1):
        v_dir = training.train_vision_model(str(tiny_lm_dir), seed, vqa_steps=2, **TINY)
        m_dir = training.train_multilingual_model(str(tiny_lm_dir), langs, seed, text_scenes=2, steps=2, batch_size=2,
                                              udhr_per_batch=1, lr_lm=1e-3, progress=False)
        results[seed] = experiment.run_seed(str(tiny_lm_dir), langs, seed, S, grid, v_dir, m_dir, progress=False)
    r = results[0]
    assert set(r["test"]) == {"B", "V", "M", "task_arithmetic", "ties", "dare", "breadcrumbs", "dim3"}
    # only task arithmetic has several configurations: only it is swept on validation
    assert set(r["val"]) == {experiment.label(m, kw) for m, kw in experiment.grid(grid) if m == "task_arithmetic"}
    assert r["best"]["ties"]["val"] is None and r["best"]["task_arithmetic"]["val"] is not None
    assert len(r["sim"]["V"]["vqa"]) == 4  # embeddings + 3 layers
    m = experiment.summarise(results)
    m.update(experiment.claims(m))
    card = chapter_card("08_dim3")["metrics"]
    computed_elsewhere = {"n_langs", "n_test_items", "tower_accuracy", "v_final_loss", "m_final_loss", "train_seconds",
                          "saved_merge_max_logit_diff"}  # recorded by the notebook itself
    missing = sorted(set(card) - set(m) - computed_elsewhere)
    assert not missing, missing
    for k in card:
        if k in m:
            lo, hi = card[k]
            assert (lo is None or m[k] >= lo) and (hi is None or m[k] <= hi), (k, m[k])
    # the summary is what it says: a mean over seeds of per-seed numbers
    want = np.mean([experiment.multilingual(results[s]["test"]["dim3"]["vqa"]) for s in (0, 1)])
    assert m["dim3_mvqa"] == pytest.approx(want)
