"""ROME (Meng et al. 2022): a fact edited as a rank-one update of one MLP's output projection.

A gated MLP writes ``W k`` into the stream, where ``k = act(W_gate x) ⊙ (W_up x)`` (``mlp_post``, the key)
and ``W = W_down``.  ROME treats ``W`` as a linear associative memory: for the subject's key ``k*`` (the
key at the subject's last token, averaged over a few contexts) it wants the value ``v*`` that makes the
model say the new answer, and changes ``W`` as little as possible elsewhere -- least squares over the keys
``K`` of ordinary text, subject to ``Ŵ k* = v*``:

    minimise ‖Ŵ K − W K‖²  s.t.  Ŵ k* = v*     ⇒     Ŵ = W + (v* − W k*) uᵀ / (uᵀ k*),   u = C⁻¹ k*,

with ``C = K Kᵀ / n = E[k kᵀ]`` the keys' uncentred covariance (``rank_one``).  Any other key ``k`` moves
by ``(v* − W k*) · (uᵀ k) / (uᵀ k*)``: nothing where ``k`` is C-orthogonal to ``k*``.

``v* = v + δ`` comes from gradient descent on δ added to the MLP's output at the subject's last token
(``solve_value``): the new answer's negative log-likelihood after the edit prompt (in each context), a KL
term that keeps the distribution after "<subject> is a" close to the unedited one, a weight decay on δ,
and a norm clamp.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.corpora.spamassassin import spamassassin
from mlbook.corpora.udhr import udhr
from mlbook.interp import gradients, hooks, neuronview
from mlbook.text.batching import right_pad

from . import counterfact as cf


@dataclass
class Hyper:
    """ROME's hyper-parameters (the ROME paper's GPT-2 XL values, steps and learning rate for a small model)."""

    steps: int = 20
    lr: float = 0.5
    kl_weight: float = 0.0625
    weight_decay: float = 0.5
    clamp: float = 4.0       # ‖δ‖ ≤ clamp · ‖v‖
    stop: float = 0.05       # stop early once the new answer's NLL is below this (ROME's 5e-2)


# -- the key covariance, from real text --------------------------------------------------------------

def key_text(tokenizer, n_tokens: int, seq_len: int = 128) -> list[list[int]]:
    """Windows of ordinary English text, about ``n_tokens`` tokens in all: a third each from the UDHR,
    Python's documentation topics and SpamAssassin's ham bodies (the book's offline English prose)."""
    from pydoc_data.topics import topics

    mail = spamassassin()
    sources = ["\n".join(udhr(["eng"])["text"]), "\n\n".join(topics[k] for k in sorted(topics)),
               "\n\n".join(b for b, lab in zip(mail["body"], mail["label"]) if lab == 0 and b)[:2_000_000]]
    out = []
    for text in sources:
        ids, budget = tokenizer(text, add_special_tokens=False)["input_ids"], n_tokens // len(sources)
        for s in range(0, min(len(ids), budget), seq_len):
            out.append(ids[s:s + seq_len])
    return [w for w in out if len(w) >= 8]


def key_covariance(model, layer: int, windows: list[list[int]], batch_size: int = 16):
    """``C = E[k kᵀ]`` (d_mlp, d_mlp, float64) over every token of ``windows``, ``k`` = layer ``layer``'s
    ``mlp_post`` (``neuronview.layer_post``: the forward pass stops at the layer, nothing after it is needed)."""
    import torch

    d = model.config.intermediate_size
    C, n = torch.zeros(d, d, dtype=torch.float64), 0
    for s in range(0, len(windows), batch_size):
        chunk = windows[s:s + batch_size]
        _, mask = right_pad(chunk, 0)
        k = neuronview.layer_post(model, chunk, layer)[mask.bool()].double()   # (real tokens, d)
        C += k.T @ k
        n += len(k)
    return C / n


def covariance(model, tokenizer, model_name: str, layer: int, n_tokens: int):
    """``key_covariance`` over ``key_text``, cached per model, layer, size and code."""
    import torch

    def build(folder: Path) -> dict:
        windows = key_text(tokenizer, n_tokens)
        torch.save(key_covariance(model, layer, windows), folder / "C.pt")
        return {"tokens": sum(len(w) for w in windows)}

    key = key_of(model_name, layer, n_tokens, source_digest(__name__))
    return torch.load(cached_folder(f"ch04-cov-{key}", build) / "C.pt")


# -- the subject's key and the new value ---------------------------------------------------------------

def subject_position(tokenizer, text: str, subject: str) -> int:
    """Index (in ``counterfact.encode(text)``) of the last token of ``subject``'s last occurrence in ``text``."""
    end = text.rfind(subject)
    if end < 0:
        raise ValueError(f"subject {subject!r} not in {text!r}")
    end += len(subject)
    enc = tokenizer(text, return_offsets_mapping=True)
    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > a]
    return pos[-1]


def _contexts(tokenizer, text: str, subject: str) -> tuple[list[list[int]], list[int]]:
    rows = [prefix + text for prefix in cf.templates()["prefixes"]]
    return [cf.encode(tokenizer, r) for r in rows], [subject_position(tokenizer, r, subject) for r in rows]


def subject_key(model, tokenizer, layer: int, edit: dict):
    """``k*``: the mean of layer ``layer``'s key at the subject's last token over the prefixed edit prompts."""
    import torch

    ids, pos = _contexts(tokenizer, edit["prompt"], edit["subject"])
    x, mask = right_pad(ids, 0)
    dev = hooks._device(model)
    with torch.no_grad(), hooks.capture(model, [hooks.addr(layer, "mlp_post")]) as cache:
        model(input_ids=x.to(dev), attention_mask=mask.to(dev))
    k = cache[hooks.addr(layer, "mlp_post")]
    return k[torch.arange(len(ids)), torch.tensor(pos)].float().cpu().mean(0)


def _add_at(delta, rows, positions):
    """A hook fn adding ``delta`` at ``(rows[i], positions[i])`` of an activation (B, T, d)."""
    import torch

    def fn(act):
        add = torch.zeros_like(act)
        add[rows, positions] = delta.to(act.dtype)
        return act + add
    return fn


def solve_value(model, tokenizer, layer: int, edit: dict, hp: Hyper = Hyper()):
    """``(δ, log)``: the shift of layer ``layer``'s MLP output at the subject that makes the new answer likely.

    Rows: each prefixed edit prompt followed by the new answer's tokens (teacher forcing), and the essence
    prompt; δ is added at the subject's last token of every row.  Loss = mean NLL of the new answer's tokens
    + ``kl_weight`` · KL(p₀ ‖ p) at the essence prompt's last token + ``weight_decay`` · ‖δ‖² / ‖v‖²."""
    import torch

    new_ids = tokenizer(" " + edit["new"], add_special_tokens=False)["input_ids"]
    ids, pos = _contexts(tokenizer, edit["prompt"], edit["subject"])
    seqs = [p + new_ids for p in ids]
    ess, ess_pos = cf.encode(tokenizer, edit["essence"]), subject_position(tokenizer, edit["essence"], edit["subject"])
    x, mask = right_pad(seqs + [ess], 0)
    dev = hooks._device(model)
    x, mask = x.to(dev), mask.to(dev)
    rows, cols = torch.arange(len(seqs) + 1), torch.tensor(pos + [ess_pos])
    # the target tokens' positions: the logits at column t predict token t + 1
    tgt_rows = torch.tensor([r for r, p in enumerate(ids) for _ in new_ids])
    tgt_cols = torch.tensor([len(p) - 1 + j for p in ids for j in range(len(new_ids))])
    tgt_ids = torch.tensor([t for _ in ids for t in new_ids])
    # logits only where the loss reads them (the LM head is a fifth of the cost of a step)
    keep = sorted(set(tgt_cols.tolist()) | {len(ess) - 1})
    at = {c: i for i, c in enumerate(keep)}
    tgt_cols, ess_col = torch.tensor([at[c] for c in tgt_cols.tolist()]), at[len(ess) - 1]
    keep = torch.tensor(keep)
    address = hooks.addr(layer, "mlp_out")
    with torch.no_grad(), hooks.capture(model, [address]) as cache:
        logits0 = model(input_ids=x, attention_mask=mask, logits_to_keep=keep).logits
    v = cache[address][0, pos[0]].float()
    p0 = torch.log_softmax(logits0[-1, ess_col].float(), -1)
    delta = torch.zeros_like(v, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=hp.lr)
    log = []
    with gradients.frozen(model):
        for _ in range(hp.steps):
            with hooks.hooked(model, {address: _add_at(delta, rows, cols)}):
                logits = model(input_ids=x, attention_mask=mask, logits_to_keep=keep).logits.float()
            lp = torch.log_softmax(logits[tgt_rows, tgt_cols], -1)
            nll = -lp[torch.arange(len(tgt_ids)), tgt_ids].mean()
            p = torch.log_softmax(logits[-1, ess_col], -1)
            kl = torch.sum(p0.exp() * (p0 - p))
            loss = nll + hp.kl_weight * kl + hp.weight_decay * delta.pow(2).sum() / v.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                limit = hp.clamp * v.norm()
                if delta.norm() > limit:
                    delta.mul_(limit / delta.norm())
            log.append({"nll": nll.item(), "kl": kl.item()})
            if nll.item() < hp.stop:
                break
    delta = delta.detach()
    return delta.cpu(), {"v_norm": float(v.norm()), "delta_norm": float(delta.norm()), "log": log, "v": v.cpu()}


# -- the rank-one update ---------------------------------------------------------------------------------

def rank_one(W, C, k, v):
    """``ΔW = (v − W k) uᵀ / (uᵀ k)``, ``u = C⁻¹ k``: the smallest change (in the C-weighted sense) with
    ``(W + ΔW) k = v``.  ``W`` (d, d_mlp), ``C`` (d_mlp, d_mlp), ``k`` (d_mlp,), ``v`` (d,)."""
    import torch

    Wd, kd, vd = W.double(), k.double(), v.double()
    u = torch.linalg.solve(C.double(), kd)
    return (torch.outer(vd - Wd @ kd, u) / (u @ kd)).to(W.dtype)


def rome(model, tokenizer, layer: int, edit: dict, C, hp: Hyper = Hyper()):
    """``(ΔW, info)`` for one edit: ``k*`` from ``subject_key``; ``v* = v + δ``, the MLP's output at the edit
    prompt's subject plus ``solve_value``'s shift (ROME's ``cur_out + δ``); ``ΔW = rank_one(W, C, k*, v*)``."""
    W = hooks.layers(model)[layer].mlp.down_proj.weight.detach().float().cpu()
    k = subject_key(model, tokenizer, layer, edit)
    delta, info = solve_value(model, tokenizer, layer, edit, hp)
    v_star = info["v"] + delta
    return rank_one(W, C, k, v_star), {**info, "k": k, "v_star": v_star}


@contextmanager
def applied(model, layer: int, dW):
    """The model with ``W_down[layer] += ΔW`` inside the block; the original weight restored exactly after."""
    import torch

    w = hooks.layers(model)[layer].mlp.down_proj.weight
    keep = w.detach().clone()
    with torch.no_grad():
        w.add_(dW.to(w.device, w.dtype))
    try:
        yield model
    finally:
        with torch.no_grad():
            w.copy_(keep)
