"""Chapter 4's experiment: edit, score, attribute, steer.

Per edit (``counterfact.edits``), on one model:

- ``scores``: efficacy, generalisation and specificity of the model as it is (edited or not);
- ``attribution``: NLKA's layer-level importance of every attention and FFN layer for the new answer o*
  and the old one o, on the edit's paraphrases (the prompts that decide success), mean over them;
- ``weight_edit``: one edit by ROME or FT-L, scored and attributed with the edit applied, then undone (its
  ΔW kept: 3.5 MB on SmolLM2, for what is read of the edited model later);
- ``located_layers``: the layers MEGA steers -- the top of the attention contrast
  Δ_attn(o*) = mean Imp over successful edits − mean over failed ones -- and the bottom, as the control;
- ``mega_edit``: MEGA's maps fitted for one edit at given layers, scored through the gate.
"""
from __future__ import annotations

import numpy as np

from mlbook.interp import nlka

from . import counterfact as cf
from . import ftl as ftl_mod
from . import mega
from . import rome as rome_mod

METHODS = ("ROME", "FT-L")


def _prompts(e: dict) -> list[str]:
    return [e["prompt"], *e["paraphrases"], *[p for p, _ in e["neighbours"]]]


def _split_scores(logits, e):
    n_p = len(e["paraphrases"])
    return cf.scores(logits[0], logits[1:1 + n_p], logits[1 + n_p:], e)


def scores(model, tokenizer, e: dict) -> dict:
    """Efficacy, generalisation, specificity of ``model`` as it is, for edit ``e`` (one batch)."""
    return _split_scores(cf.last_logits(model, [cf.encode(tokenizer, p) for p in _prompts(e)]), e)


def attribution(model, tokenizer, e: dict) -> dict:
    """``{"attn": (L, 2), "ffn": (L, 2)}``: layer-level Imp for (o*, o) on the paraphrases, mean over them."""
    prompts = [cf.encode(tokenizer, p) for p in e["paraphrases"]]
    imp = nlka.layer_importance(model, prompts, [[e["new_id"], e["true_id"]]] * len(prompts))
    return {k: v.mean(0).numpy() for k, v in imp.items()}


def weight_edit(model, tokenizer, e: dict, method: str, layer: int, C=None, rome_hp=None, ftl_hp=None) -> dict:
    """Edit ``e`` with ``method`` at ``layer``; its scores and attribution with the edit applied (then undone)."""
    if method == "ROME":
        dW, _ = rome_mod.rome(model, tokenizer, layer, e, C, rome_hp or rome_mod.Hyper())
    elif method == "FT-L":
        dW, _ = ftl_mod.ftl(model, tokenizer, layer, e, ftl_hp or ftl_mod.Hyper())
    else:
        raise ValueError(f"unknown method {method!r}; methods are {METHODS}")
    with rome_mod.applied(model, layer, dW):
        return {"scores": scores(model, tokenizer, e), "imp": attribution(model, tokenizer, e), "dW": dW}


SUCCESS = 1.0   # the chapter's split: an edit succeeds when the new answer wins on every paraphrase


def success(rec: dict, threshold: float = SUCCESS) -> bool:
    """An edit succeeds when the new answer wins on at least ``threshold`` of the paraphrases."""
    return rec["scores"]["generalisation"] >= threshold - 1e-9


def contrast(records: list[dict], site: str, target: int, threshold: float = SUCCESS) -> np.ndarray:
    """(L,): mean Imp over successful edits − mean over failed ones, at ``site`` ("attn"/"ffn"), for
    ``target`` (0: o*, 1: o); NaN where a group is empty."""
    ok = [r["imp"][site][:, target] for r in records if success(r, threshold)]
    bad = [r["imp"][site][:, target] for r in records if not success(r, threshold)]
    if not ok or not bad:
        return np.full(len(records[0]["imp"][site]) if records else 0, np.nan)
    return np.mean(ok, 0) - np.mean(bad, 0)


def located_layers(records: list[dict], k: int, threshold: float = SUCCESS) -> tuple[list[int], list[int]]:
    """``(located, control)``: the ``k`` layers with the largest attention contrast for o*, and the ``k``
    with the smallest.  Where the edits are all successes or all failures (a handful of edits) there is no
    contrast, and the layers are ranked by the mean attention importance for o* of the edits there are."""
    if not records:
        raise ValueError("located_layers needs edits")
    c = contrast(records, "attn", 0, threshold)
    if np.isnan(c).all():
        c = np.mean([r["imp"]["attn"][:, 0] for r in records], 0)
    order = np.argsort(-np.nan_to_num(c, nan=-np.inf), kind="stable")
    return sorted(order[:k].tolist()), sorted(order[-k:].tolist())


def prompt_cosines(encoder, enc_tokenizer, e: dict) -> list[float]:
    """MiniLM cosine with the edit prompt of each of the edit's evaluation prompts (the edit prompt, its
    paraphrases, its neighbours): what the gate compares with τ, computed once per edit."""
    return mega.gate(encoder, enc_tokenizer, e["prompt"], _prompts(e), 0.0)[1]


def mega_edit(model, tokenizer, encoder, enc_tokenizer, e: dict, layers, tau: float, rank: int = 0,
              alpha: float = 1.0, *, maps: dict | None = None, cos: list[float] | None = None) -> dict:
    """MEGA for edit ``e`` at ``layers``: fit the maps, gate every evaluation prompt, score.  ``maps`` (from
    ``mega.fit`` at these layers) and ``cos`` (from ``prompt_cosines``) skip the fit and the embedding when a
    caller already has them (a sweep over α reuses both)."""
    maps = mega.fit(model, tokenizer, e, layers, rank) if maps is None else maps
    cos = prompt_cosines(encoder, enc_tokenizer, e) if cos is None else cos
    passes = [c >= tau for c in cos]
    logits = mega.logits_with(model, tokenizer, _prompts(e), maps, passes, alpha)
    n_p = len(e["paraphrases"])
    return {"scores": _split_scores(logits, e), "gate_para": float(np.mean(passes[1:1 + n_p])),
            "gate_nb": float(np.mean(passes[1 + n_p:])) if len(passes) > 1 + n_p else 0.0}


def gate_cosines(edits: list[dict], cosines: list[list[float]]) -> tuple[list[float], list[float]]:
    """From each edit's ``prompt_cosines``: those of its paraphrases (should be steered) and of its
    neighbourhood prompts (should not), the data ``mega.choose_tau`` sets τ from."""
    pos, neg = [], []
    for e, cos in zip(edits, cosines, strict=True):
        n_p = len(e["paraphrases"])
        pos += cos[1:1 + n_p]
        neg += cos[1 + n_p:]
    return pos, neg


def edit_score(s: dict) -> float:
    """One number per edit: the mean of efficacy, generalisation and specificity."""
    return (s["efficacy"] + s["generalisation"] + s["specificity"]) / 3
