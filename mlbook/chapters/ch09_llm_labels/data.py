"""Chapter 9's labelled pool: SpamAssassin by default, or a user's own data (a CSV file or a hub data set)
with a text column and a 0/1 label column (1 = the positive class the annotator is asked about)."""
from __future__ import annotations

from pathlib import Path

from mlbook.corpora.spamassassin import spamassassin


def load_corpus(source: str = "spamassassin", text_column: str = "text", label_column: str = "label"):
    """A ``datasets.Dataset`` with columns id, text, label (int 0/1).

    ``source``: "spamassassin" (``mlbook.corpora.spamassassin``), a ``.csv`` file, or a hub data set id
    (its ``train`` split; needs the hub or the local HF cache)."""
    from datasets import Dataset

    if source == "spamassassin":
        return spamassassin().select_columns(["id", "text", "label"])
    if str(source).endswith(".csv"):
        import pandas as pd

        if not Path(source).exists():
            raise FileNotFoundError(f"no CSV file {source!r}")
        df = pd.read_csv(source)
    else:
        from datasets import load_dataset

        try:
            df = load_dataset(source, split="train").to_pandas()
        except Exception as e:  # offline, unknown id, ...
            raise ValueError(f"cannot load the data set {source!r} ({type(e).__name__}: {e}); give 'spamassassin', "
                             f"a .csv path, or a hub id reachable from here") from None
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: no column {', '.join(map(repr, missing))}; its columns are {list(df.columns)} "
                         f"(set text_column= / label_column=)")
    labels = sorted(df[label_column].dropna().unique().tolist())
    if not set(labels) <= {0, 1}:
        raise ValueError(f"{source}: the label column {label_column!r} must hold 0/1 (1 = positive), found {labels[:10]}")
    df = df.dropna(subset=[text_column, label_column])
    ids = df["id"].astype(str) if "id" in df.columns else df.index.astype(str)
    return Dataset.from_dict({"id": list(ids), "text": df[text_column].astype(str).tolist(),
                              "label": df[label_column].astype(int).tolist()})
