"""The logit lens: read the residual stream of every layer through the unembedding.

For a prompt, the residual stream after layer ℓ at the last position, h_ℓ, is mapped to
vocabulary logits as if it were the final layer's output:

    logits_ℓ = W_U · Norm_final(h_ℓ)

(``mlbook.interp.hooks.logit_lens``).  Where the correct answer first becomes the top token tells
at which depth the model "knows" it.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import hooks


@dataclass
class LensResult:
    """Per prompt × layer: the answer token's rank (0 = top-1) and probability, and the top token."""

    ranks: "object"      # LongTensor (n_prompts, n_layers)
    probs: "object"      # FloatTensor (n_prompts, n_layers)
    top_tokens: list     # n_prompts lists of n_layers decoded top-1 tokens
    answer_ids: list     # first token id of each answer

    def first_top1_layer(self):
        """Per prompt: the first layer from which the answer stays top-1 to the end (-1 if never at the end)."""
        import torch

        top1 = self.ranks == 0                                  # (P, L)
        # stays top-1 from layer ℓ on  ⇔  all of top1[ℓ:] hold: a reversed cumulative AND
        stays = torch.flip(torch.cumprod(torch.flip(top1.int(), [1]), 1), [1]).bool()
        n_layers = top1.shape[1]
        first = torch.where(stays.any(1), n_layers - stays.sum(1), torch.full_like(stays.sum(1), -1))
        return first


def answer_token_id(tokenizer, answer: str) -> int:
    """The first token of ``answer`` as it would follow a prompt (with its leading space)."""
    ids = tokenizer(answer if answer.startswith(" ") else " " + answer, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"answer {answer!r} tokenises to nothing")
    return ids[0]


def logit_lens_sweep(model, tokenizer, prompts: list[str], answers: list[str], progress: bool = True) -> LensResult:
    """Run each prompt once, read ``resid_post`` of every layer at the last position through the lens."""
    import torch
    from tqdm.auto import tqdm


    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    n_layers = hooks.n_layers(model)
    addresses = [hooks.addr(l, "resid_post") for l in range(n_layers)]
    answer_ids = [answer_token_id(tokenizer, a) for a in answers]
    ranks = torch.zeros(len(prompts), n_layers, dtype=torch.long)
    probs = torch.zeros(len(prompts), n_layers)
    tops = []
    device = next(model.parameters()).device
    for i, prompt in enumerate(tqdm(prompts, desc="logit lens", disable=not progress)):
        batch = tokenizer(prompt, return_tensors="pt").to(device)
        with torch.no_grad(), hooks.capture(model, addresses) as cache:
            model(**batch)
        resid = torch.stack([cache[a][0, -1] for a in addresses])          # (L, d_model)
        with torch.no_grad():
            logits = hooks.logit_lens(model, resid).float()                  # (L, vocab)
        target = logits[:, answer_ids[i]]                                    # (L,)
        ranks[i] = (logits > target[:, None]).sum(1)
        probs[i] = torch.softmax(logits, -1)[:, answer_ids[i]]
        tops.append(tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist()))
    return LensResult(ranks=ranks, probs=probs, top_tokens=tops, answer_ids=answer_ids)


def top_tokens_at(model, tokenizer, resid, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` most likely tokens (decoded, with probabilities) the lens reads from one residual vector."""
    import torch


    with torch.no_grad():
        p = torch.softmax(hooks.logit_lens(model, resid[None]).float()[0], -1)
    val, idx = p.topk(k)
    return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(val, idx)]
