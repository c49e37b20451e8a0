"""The survey's taxonomy as a figure: which (object × method family) cells this chapter implements."""
from __future__ import annotations

OBJECTS = ("token embedding", "residual stream", "attention heads", "FFN / MLP", "neuron", "SAE feature", "circuit")
LOCALISE = ("magnitude analysis", "causal attribution", "gradient detection", "probing", "vocabulary projection",
            "circuit discovery")
STEER = ("amplitude manipulation", "targeted optimisation", "vector arithmetic")
IMPROVE = ("alignment (safety, fairness, persona)", "capability (multilingual, knowledge, reasoning)",
           "efficiency (training, inference)")

# (family, object) -> what implements it here (``mlbook.interp``)
HERE = {
    ("causal attribution", "residual stream"): "activation patching",
    ("causal attribution", "attention heads"): "head patching",
    ("causal attribution", "FFN / MLP"): "activation patching",
    ("gradient detection", "residual stream"): "attribution patching",
    ("gradient detection", "FFN / MLP"): "attribution patching",
    ("probing", "residual stream"): "linear probe + control",
    ("vocabulary projection", "residual stream"): "logit lens",
    ("amplitude manipulation", "attention heads"): "head ablation",
    ("vector arithmetic", "residual stream"): "steering vector",
}
ELSEWHERE = {("magnitude analysis", "neuron"): "ch. 1", ("circuit discovery", "circuit"): "ch. 3",
             ("gradient detection", "neuron"): "ch. 3", ("targeted optimisation", "FFN / MLP"): "ch. 4",
             ("vector arithmetic", "attention heads"): "ch. 4"}


def figure():
    """The grid: localising and steering families × objects; filled cells are this chapter's, outlined ones
    other chapters'.  Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    rows = [("Locate", f) for f in LOCALISE] + [("Steer", f) for f in STEER]
    fig, ax = plt.subplots(figsize=(12, 5.2), layout="constrained")
    for i, (stage, fam) in enumerate(rows):
        for j, obj in enumerate(OBJECTS):
            here, other = HERE.get((fam, obj)), ELSEWHERE.get((fam, obj))
            colour = "tab:green" if here else ("white" if not other else "whitesmoke")
            ax.add_patch(plt.Rectangle((j, i), 0.96, 0.9, color=colour, alpha=0.55 if here else 1,
                                       ec="tab:green" if other else "lightgrey"))
            if here or other:
                ax.text(j + 0.48, i + 0.45, here or other, ha="center", va="center", fontsize=7.5)
    ax.set_xlim(0, len(OBJECTS))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.48 for j in range(len(OBJECTS))], OBJECTS, rotation=15)
    ax.set_yticks([i + 0.45 for i in range(len(rows))], [f"{s}: {f}" for s, f in rows])
    ax.axhline(len(LOCALISE) - 0.05, color="k", lw=0.8)
    ax.set_title("Interpretable objects × methods (green: this chapter; outlined: other chapters). "
                 "Improve here: capability / knowledge", fontsize=10)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    return fig
