"""The GLUScope neuron viewer: one page per neuron, as self-contained HTML or a live ipywidget.

A page shows (as in the paper's tool) a four-column table -- frequency and mean/max/min of
post, in, gate and swish for each sign case -- the top and bottom vocabulary projections of
the neuron's output weight, and per case a collapsible list of its top examples, each text
cut a few tokens after its peak with every token coloured by the neuron's ``post``
(red > 0, blue < 0; full colour = the case's largest shown peak).  The statistics come from :func:`mlbook.chapters.ch01_gluscope.experiment.neuron_stats`; the
per-token colours are recomputed for the shown examples only, running the model up to the
neuron's layer and no further.

Pages use inline styles and ``<details>`` only (no script, no stylesheet), so the HTML works
offline inside the built book.
"""
from __future__ import annotations

import html

from mlbook.models.layout import decoder

from . import hooks
from .glu import ACTS, CASES, SHORT

RED, BLUE = (214, 39, 40), (31, 119, 180)


def token_pieces(tokenizer, ids) -> list[str]:
    """The text each token adds; a character split over several byte tokens goes to its last token."""
    pieces, done = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(ids[: i + 1], skip_special_tokens=False)
        if text.endswith("\ufffd"):       # an unfinished UTF-8 character: wait for its next byte
            pieces.append("")
            continue
        pieces.append(text[len(done):].replace("\ufffd", ""))   # bytes of a character cut by the window
        done = text
    return pieces


class _Stop(Exception):
    pass


def layer_post(model, sequences, layer: int):
    """``mlp_post`` of ``layer`` (B,S,d_mlp) for a list of token-id lists; the forward stops after that layer."""
    import torch


    module, _ = hooks.module_for(model, hooks.addr(layer, "mlp_post"))
    S = max(map(len, sequences))
    x = torch.zeros(len(sequences), S, dtype=torch.long)
    mask = torch.zeros_like(x)
    for b, seq in enumerate(sequences):
        x[b, :len(seq)], mask[b, :len(seq)] = torch.tensor(seq), 1
    got = {}

    def grab(mod, args):
        got["post"] = args[0].detach().float().cpu()
        raise _Stop

    handle = module.register_forward_pre_hook(grab)
    try:
        with torch.inference_mode():
            decoder(model)(input_ids=x.to(model.device), attention_mask=mask.to(model.device))
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["post"]


def examples(model, tokenizer, texts, row: dict, n: int = 5, before: int = 20, after: int = 4) -> dict:
    """Per case, the first ``n`` top examples of a neuron (a stats row) with per-token pieces and post values."""
    layer, neuron = row["layer"], row["neuron"]
    wanted = [(c, t, p) for c in SHORT for t, p in zip(row[f"{c}_top_texts"][:n], row[f"{c}_top_positions"][:n])
              if t >= 0]
    out = {c: [] for c in SHORT}
    if not wanted:
        return out
    order = sorted({t for _, t, _ in wanted})
    ends = {t: max(p for _, tt, p in wanted if tt == t) + after + 1 for t in order}
    seqs = [texts[t]["input_ids"][: ends[t]] for t in order]
    post = layer_post(model, seqs, layer)[..., neuron]
    for c, t, p in wanted:
        w = texts[t]
        lo, hi = max(w["first"], p - before), min(ends[t], len(w["input_ids"]))
        start = max(w["first"], lo - 4)        # a few tokens of left context finish a character cut at lo
        pieces = token_pieces(tokenizer, w["input_ids"][start: hi])[lo - start:]
        out[c].append({"text": t, "pos": p, "pieces": pieces, "values": post[order.index(t), lo:hi].tolist(),
                       "peak": p - lo, "register": w.get("register", ""), "lang": w.get("lang", "")})
    return out


def _fmt(v) -> str:
    return "–" if v is None or v != v else f"{v:.3g}"


def case_table_html(row: dict) -> str:
    """The four-column table: frequency, then mean / max / min of each activation per case."""
    head = "".join(f"<th style='padding:2px 8px'>{c}</th>" for c in CASES)
    freqs = "".join("<td>{:.1%}</td>".format(row[c + "_freq"]) for c in SHORT)
    lines = [f"<tr><td>frequency</td>{freqs}</tr>"]
    for act in ACTS:
        for stat in ("mean", "max", "min"):
            cells = "".join(f"<td>{_fmt(row[f'{c}_{act}_{stat}'])}</td>" for c in SHORT)
            lines.append(f"<tr><td>{act} {stat}</td>{cells}</tr>")
    return ("<table style='border-collapse:collapse;font-size:12px;text-align:right'>"
            f"<tr><th></th>{head}</tr>{''.join(lines)}</table>")


def _colour(v: float, vmax: float) -> str:
    r, g, b = RED if v > 0 else BLUE
    a = min(1.0, abs(v) / vmax) if vmax > 0 else 0.0
    return f"rgba({r},{g},{b},{a * 0.85:.2f})"


def example_html(ex: dict, vmax: float) -> str:
    """One example: tokens coloured by post, the peak underlined, the value in each token's tooltip."""
    spans = []
    for i, (piece, v) in enumerate(zip(ex["pieces"], ex["values"])):
        text = html.escape(piece.replace("\n", "↵").replace("\t", " ")) or "&#8203;"
        peak = "font-weight:bold;text-decoration:underline;" if i == ex["peak"] else ""
        spans.append(f"<span title='{v:.3f}' style='background:{_colour(v, vmax)};{peak}'>{text}</span>")
    meta = f"<span style='color:#888;font-size:10px'> [{ex['register']} {ex['lang']} #{ex['text']}]</span>"
    return f"<div dir='auto' style='font-family:monospace;font-size:12px;margin:2px 0'>{''.join(spans)}{meta}</div>"


def weight_view_html(model, tokenizer, layer: int, neuron: int, k: int = 8) -> str:
    """Top and bottom tokens of W_U w_out[:, n]: what the neuron's output writes towards and away from."""

    w_out = hooks.mlp_weights(model, layer)[2][:, neuron].float()
    logits = hooks.unembed(model).float() @ w_out
    show = lambda idx: ", ".join(html.escape(repr(tokenizer.decode([int(i)]))) for i in idx)  # noqa: E731
    top, bottom = logits.topk(k).indices, (-logits).topk(k).indices
    return (f"<div style='font-size:12px'><b>W<sub>U</sub>·w<sub>out</sub> top:</b> {show(top)}<br>"
            f"<b>bottom:</b> {show(bottom)}</div>")


def neuron_page(model, tokenizer, stats, texts, layer: int, neuron: int, n: int = 5, label: str = "",
                open_cases: bool = False) -> str:
    """The page of neuron ``layer``.``neuron``: table, weight view and the examples of each case."""
    n_mlp = stats[-1]["neuron"] + 1
    row = stats[layer * n_mlp + neuron]
    exs = examples(model, tokenizer, texts, row, n)
    parts = [f"<h4 id='{html.escape(label)}-L{layer}-N{neuron}' style='margin:8px 0 4px'>"
             f"{html.escape(label)} L{layer}.N{neuron}"
             f"{' (refactored: in flipped)' if row.get('flipped') else ''}</h4>",
             case_table_html(row), weight_view_html(model, tokenizer, layer, neuron)]
    for c, name in zip(SHORT, CASES):      # one colour scale per case: gate- cases are quieter
        vmax = max([abs(e["values"][e["peak"]]) for e in exs[c]] or [1.0])
        items = "".join(example_html(e, vmax) for e in exs[c]) or "<i>no example</i>"
        parts.append(f"<details{' open' if open_cases else ''}><summary>{name}: {row[f'{c}_freq']:.1%} of tokens, "
                     f"top {len(exs[c])} examples</summary>{items}</details>")
    return "<div style='margin-bottom:12px'>" + "".join(parts) + "</div>"


def static_viewer(pages: list[tuple[str, str]], title: str = "GLUScope neuron viewer") -> str:
    """An index and the pages, as one self-contained HTML block (``pages``: (name, html) pairs)."""
    index = " · ".join(f"<a href='#gluscope-page-{i}'>{html.escape(n)}</a>" for i, (n, _) in enumerate(pages))
    body = "".join(f"<details id='gluscope-page-{i}'><summary><b>{html.escape(n)}</b></summary>{h}</details>"
                   for i, (n, h) in enumerate(pages))
    return f"<div><h3 style='margin:4px 0'>{html.escape(title)}</h3><p>{index}</p>{body}</div>"


def viewer(loaded: dict, n: int = 5):
    """The live viewer: ``loaded`` maps a label to (model, tokenizer, stats, texts); pick model, layer, neuron."""
    import ipywidgets as widgets
    from IPython.display import HTML, display

    labels = list(loaded)
    which = widgets.Dropdown(options=labels, description="model")
    layer = widgets.BoundedIntText(value=0, min=0, max=0, description="layer")
    neuron = widgets.BoundedIntText(value=0, min=0, max=0, description="neuron")
    count = widgets.IntSlider(value=n, min=1, max=16, description="examples")
    out = widgets.Output()

    def bounds(*_):
        stats = loaded[which.value][2]
        layer.max, neuron.max = stats[-1]["layer"], stats[-1]["neuron"]

    def show(*_):
        m, tok, stats, texts = loaded[which.value]
        with out:
            out.clear_output(wait=True)
            display(HTML(neuron_page(m, tok, stats, texts, layer.value, neuron.value, count.value, which.value,
                                     open_cases=True)))

    which.observe(bounds, "value")
    for w in (which, layer, neuron, count):
        w.observe(show, "value")
    bounds()
    show()
    return widgets.VBox([widgets.HBox([which, layer, neuron, count]), out])
