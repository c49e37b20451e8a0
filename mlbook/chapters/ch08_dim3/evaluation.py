"""Chapter 8's evaluation: the three models (B, V, M) and their language-model weights under the base's
tensor names, the held-out suite of one seed (scenes asked in every language, UDHR paragraphs), multiple
choice accuracy, held-out UDHR NLL, and the per-layer cross-lingual similarity of hidden states."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlbook.interp import crosslingual as xl
from mlbook.merging.folders import lm_state_dict
from mlbook.models import llava
from mlbook.models.loading import load_causal_lm
from mlbook.text import choice, likelihood

from . import scenes, vision
from .training import HELDOUT_ARTICLES


def load_three(lm_name: str, v_dir: Path, m_dir: Path, device: str = "cpu"):
    """(B, V, M, tokenizer): B a causal LM, V a ``LlavaForConditionalGeneration``, M a causal LM."""
    from transformers import AutoModelForCausalLM, LlavaForConditionalGeneration


    B, tok = load_causal_lm(lm_name, device=device)
    V = LlavaForConditionalGeneration.from_pretrained(v_dir, dtype="float32").to(device).eval()
    M = AutoModelForCausalLM.from_pretrained(m_dir, dtype="float32").to(device).eval()
    return B, V, M, tok


def lm_weights(model, base_names) -> dict:
    """The language-model weights of ``model`` (causal LM or LLaVA) under the base LM's tensor names."""

    copies: dict = {}  # a copy (set_lm writes into the live model in place), one per storage: ties stay tied
    return {k: copies.setdefault(v.data_ptr(), v.detach().clone())
            for k, v in lm_state_dict(model.state_dict(), base_names).items()}


def set_lm(vlm_model, weights: dict) -> None:
    """Load base-named LM ``weights`` into a LLaVA model's language model (vision parts untouched)."""
    import torch

    body = {k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}
    missing, unexpected = vlm_model.model.language_model.load_state_dict(body, strict=False)
    if missing or unexpected:
        raise ValueError(f"LM weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if not vlm_model.config.text_config.tie_word_embeddings and "lm_head.weight" in weights:
        with torch.no_grad():
            vlm_model.lm_head.weight.copy_(weights["lm_head.weight"])


@dataclass
class Suite:
    """Held-out scenes of one seed, tokenised once: per split, pixel values and the items with their
    visual prompt, text prompt, candidates and gold answer; plus held-out UDHR paragraphs per language."""

    langs: list[str]
    splits: dict = field(default_factory=dict)
    udhr: dict = field(default_factory=dict)


def image_processor(v_dir):
    """The image processor saved with V (None if V has none: then ``llava.pixel_values`` is used)."""
    if not (Path(v_dir) / "preprocessor_config.json").exists() and not (Path(v_dir) / "processor_config.json").exists():
        return None
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(v_dir).image_processor


def build_suite(tok, vlm_model, langs: list[str], n_val: int, n_test: int, seed: int, n_udhr: int,
                chat: bool = False, image_processor=None) -> Suite:
    """Held-out scenes (validation and test) asked in ``langs``; pixel values from ``image_processor`` (a real
    checkpoint's own) or, when None, ``llava.pixel_values`` (the same numbers for the chapter's V)."""

    langs = scenes.check_languages(langs)
    img_id, n_img = vlm_model.config.image_token_id, llava.n_image_tokens(vlm_model)
    suite = Suite(langs=langs)
    for split, n, s in (("val", n_val, 50_000 + seed), ("test", n_test, 60_000 + seed)):
        sc = scenes.sample_scenes(n, s)
        its = scenes.items(sc, langs)
        for it in its:
            q = it["question"]
            it["vqa_prompt"] = vision.prompt_ids(tok, q, n_image=n_img, image_id=img_id, chat=chat)
            it["text_prompt"] = vision.prompt_ids(tok, q, context=scenes.describe(sc[it["scene"]]), chat=chat)
            it["cand_ids"] = [vision.answer_ids(tok, c) for c in it["candidates"]]
            it["n_question"] = len(tok(q + "\n", add_special_tokens=False)["input_ids"])
        imgs = scenes.draw_many(sc, s)
        px = llava.pixel_values(imgs) if image_processor is None else \
            image_processor(images=list(imgs), return_tensors="pt")["pixel_values"]
        suite.splits[split] = {"scenes": sc, "pixels": px, "items": its}
    for lang, paras in scenes.udhr_texts(langs, HELDOUT_ARTICLES).items():
        suite.udhr[lang] = [tok(p, add_special_tokens=False)["input_ids"][:128] for p in paras[:n_udhr]]
    return suite


def evaluate(model, tok, suite: Suite, split: str, udhr: bool = False, kinds: dict | None = None,
             batch_size: int = 64) -> dict:
    """Multiple-choice accuracy per language on visual questions (``vqa``) and on the same questions in
    words (``text``); with ``udhr``, the mean NLL per token of held-out UDHR paragraphs per language.

    ``kinds``: which questions to ask, {kind: languages}; by default the visual questions in every language and
    the questions in words in the languages other than English (no number of the chapter uses English in
    words: the claims compare multilingual accuracy, and English only with images). Per kind: accuracy
    per language, and per item (in the suite's order, its languages only) ``{kind}_correct``, ``{kind}_langs``
    and ``{kind}_chance`` (a guess's accuracy).
    Every language's items go through the model together (few large forward passes: on a CPU a pass over a
    handful of short prompts costs about as much as one over dozens — reading the weights dominates), and
    the prompts about one scene share one pass over their common head (``choice.score``'s ``groups``)."""
    import torch

    if kinds is None:
        kinds = {"vqa": suite.langs, "text": [lang for lang in suite.langs if lang != "en"]}
    bad_kinds = set(kinds) - {"vqa", "text"}
    bad_langs = {lang for ls in kinds.values() for lang in ls} - set(suite.langs)
    if bad_kinds or bad_langs:
        raise ValueError(f"evaluate: unknown kinds {sorted(bad_kinds)} or languages {sorted(bad_langs)}; "
                         f"kinds: vqa, text; languages of the suite: {suite.langs}")
    data = suite.splits[split]
    px = data["pixels"]
    end, pad = vision.end_id(tok), tok.pad_token_id
    out: dict = {}
    for kind, langs in kinds.items():
        its = [it for it in data["items"] if it["lang"] in langs]
        kw = {"pixel_values": px[torch.tensor([it["scene"] for it in its])]} if kind == "vqa" else {}
        gold = [it["gold"] for it in its]
        scores = choice.score(model, [it[f"{kind}_prompt"] for it in its], [it["cand_ids"] for it in its], end, pad,
                              batch_size=batch_size, groups=[it["scene"] for it in its], **kw)  # a scene's prompts share their head
        out[kind] = {lang: choice.accuracy([s for s, it in zip(scores, its) if it["lang"] == lang],
                                           [g for g, it in zip(gold, its) if it["lang"] == lang]) for lang in langs}
        out[f"{kind}_correct"] = [int(c) for c in choice.correct(scores, gold)]
        out[f"{kind}_langs"] = [it["lang"] for it in its]
        out[f"{kind}_chance"] = [1 / len(it["candidates"]) for it in its]
    if udhr:
        out["udhr_nll"] = {lang: udhr_nll(model, paras) for lang, paras in suite.udhr.items()}
    return out


def udhr_nll(model, paragraphs: list[list[int]]) -> float:
    """Mean next-token negative log-likelihood (nats per token) over tokenised paragraphs."""
    return likelihood.nll_per_token(model, paragraphs)


def similarity(model, tok, suite: Suite, split: str = "test", n_scenes: int | None = None) -> dict:
    """Per-layer cross-lingual similarity (``crosslingual``): each item in a target language paired with
    the same scene and question kind in English, pooled over the question's tokens; for visual prompts
    (``vqa``, same image on both sides) and text prompts (``text``, same English description), as the mean
    over pairs (``vqa``, ``text``: (L + 1,)) and per pair (``vqa_pairs``, ``text_pairs``: (pairs, L + 1)).
    ``n_scenes``: use the first n scenes of the split only."""

    data = suite.splits[split]
    its, px = data["items"], data["pixels"]
    if n_scenes is not None:
        its = [it for it in its if it["scene"] < n_scenes]
    en = {it["scene"]: it for it in its if it["lang"] == "en"}
    pairs = [(en[it["scene"]], it) for it in its if it["lang"] != "en" and it["scene"] in en]
    if not pairs:
        raise ValueError("the cross-lingual similarity needs English and at least one other language")
    uniq = list({id(x): x for p in pairs for x in p}.values())  # each English item once, though it has a pair per language
    at = {id(x): i for i, x in enumerate(uniq)}
    out = {}
    for kind in ("vqa", "text"):
        ids = [x[f"{kind}_prompt"] for x in uniq]
        pool = [[0] * (len(t) - x["n_question"]) + [1] * x["n_question"] for t, x in zip(ids, uniq)]
        pv = px[[x["scene"] for x in uniq]] if kind == "vqa" else None
        states = xl.pooled_states(model, ids, pool, tok.pad_token_id, pixel_values=pv)
        per_pair = xl.pair_similarity(*(states[[at[id(p[side])] for p in pairs]] for side in (0, 1)))
        out[kind], out[f"{kind}_pairs"] = per_pair.mean(0), per_pair
    return out
