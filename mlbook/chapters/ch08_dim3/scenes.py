"""Synthetic scenes for chapter 8 (DiM3): small images of coloured shapes, the same scene described in
English words, and questions about it with answers in nine languages.

A scene is 1–4 shapes of one colour and one kind, all in the left or the right half of a 48 × 48
image. The image is a 4 × 4 grid of 12-pixel cells (one cell = one patch of the vision tower), and
each shape sits, a little jittered, in its own cell. Four questions can be asked of a scene — its
colour, its shape, how many shapes and which side — each with a closed set of answer words per
language (``data/08_dim3/scenes.json``, written by the book's authors).

Everything is drawn from a seed with numpy: the same seed gives the same scenes, pixels and items.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

import json
from dataclasses import dataclass
from functools import lru_cache

from mlbook.core.catalogue import repo_root
from mlbook.corpora import udhr

SIZE, GRID = 48, 4  # image side in pixels; cells per side
CELL = SIZE // GRID  # 12 px: one cell = one vision patch
KINDS = ("colour", "shape", "count", "side")
RGB = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}


@lru_cache(maxsize=1)
def templates() -> dict:
    """The question templates and answer words (``data/08_dim3/scenes.json``)."""

    return json.loads((repo_root() / "data" / "08_dim3" / "scenes.json").read_text(encoding="utf-8"))


def languages() -> list[str]:
    """Language codes with templates, English first."""
    return list(templates()["languages"])


def check_languages(langs) -> list[str]:
    """``langs`` as a list, or a ValueError naming the known codes."""
    langs = [langs] if isinstance(langs, str) else list(langs)
    unknown = [x for x in langs if x not in templates()["languages"]]
    if unknown or not langs:
        raise ValueError(f"unknown scene language(s) {unknown or langs}; choose from {', '.join(languages())}")
    return langs


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    count: int
    side: str
    cells: tuple  # ((row, col), ...) of the shapes

    def value(self, kind: str):
        return getattr(self, kind)

    def label(self, kind: str) -> int:
        """Index of this scene's value among the attribute's values (vision pretraining targets)."""
        return list(templates()["attributes"][kind]).index(self.value(kind))


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` scenes with uniformly drawn colour, shape, count and side; cells distinct in that half."""
    import numpy as np

    rng = np.random.default_rng(seed)
    attrs = templates()["attributes"]
    out = []
    for _ in range(n):
        side = attrs["side"][rng.integers(2)]
        count = int(attrs["count"][rng.integers(4)])
        cols = (0, 1) if side == "left" else (2, 3)
        free = [(r, c) for r in range(GRID) for c in cols]  # 8 cells in the half
        pick = rng.choice(len(free), size=count, replace=False)
        out.append(Scene(colour=attrs["colour"][rng.integers(4)], shape=attrs["shape"][rng.integers(3)],
                         count=count, side=side, cells=tuple(sorted(free[i] for i in pick))))
    return out


def _shape_mask(shape: str, cy: float, cx: float, r: float):
    """Boolean SIZE × SIZE mask of one shape centred at (cy, cx) with 'radius' r (pixels)."""
    import numpy as np

    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    if shape == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= r**2
    if shape == "square":
        h = r * 0.85  # same area order as the circle
        return (np.abs(y - cy) <= h) & (np.abs(x - cx) <= h)
    if shape == "triangle":  # apex up: below the apex, inside both slanted edges, above the base
        top, base = cy - r, cy + r * 0.8
        half = (y - top) / (base - top) * r  # half-width grows linearly from the apex
        return (y >= top) & (y <= base) & (np.abs(x - cx) <= half)
    raise ValueError(f"unknown shape {shape!r}")


def draw(scene: Scene, rng) -> "np.ndarray":
    """The scene as a uint8 image (SIZE, SIZE, 3): a light noisy background and the shapes, each with a
    random radius (3.5–5 px), a ±1.5 px jitter of its centre and a little colour noise."""
    import numpy as np

    img = rng.integers(225, 256, size=(SIZE, SIZE, 1)).repeat(3, axis=2).astype(np.int16)
    for r_, c_ in scene.cells:
        cy, cx = (r_ + 0.5) * CELL + rng.uniform(-1.5, 1.5), (c_ + 0.5) * CELL + rng.uniform(-1.5, 1.5)
        mask = _shape_mask(scene.shape, cy, cx, rng.uniform(3.5, 5.0))
        colour = np.array(RGB[scene.colour]) + rng.integers(-20, 21, size=3)
        img[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_many(scenes, seed: int) -> "np.ndarray":
    """Images of ``scenes`` (n, SIZE, SIZE, 3) uint8, from one generator seeded with ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.stack([draw(s, rng) for s in scenes]) if scenes else np.zeros((0, SIZE, SIZE, 3), np.uint8)


# ------------------------------------------------------------------ words


def describe(scene: Scene) -> str:
    """The scene in English words (the text-only stand-in for its image)."""
    d = templates()["description"]
    if scene.count == 1:
        return d["singular"].format(colour=scene.colour, shape=scene.shape, side=scene.side)
    return d["plural"].format(count=d["count_words"][str(scene.count)], colour=scene.colour, shape=scene.shape,
                              side=scene.side)


def question(lang: str, kind: str) -> str:
    return templates()["languages"][lang]["questions"][kind]


def candidates(lang: str, kind: str) -> list[str]:
    """The closed set of answer words of a question kind in a language (index = attribute index)."""
    return list(templates()["languages"][lang]["answers"][kind])


def answer(scene: Scene, lang: str, kind: str) -> str:
    return candidates(lang, kind)[scene.label(kind)]


def items(scenes, langs, kinds=KINDS) -> list[dict]:
    """One question per scene and language, the kinds taking turns over scenes (scene i gets
    kinds[i % len(kinds)]), so the same scene is asked the same thing in every language (parallel items).
    Each item: scene (index), lang, kind, question, answer, candidates, gold (index into candidates)."""
    langs = check_languages(langs)
    out = []
    for lang in langs:
        for i, s in enumerate(scenes):
            kind = kinds[i % len(kinds)]
            out.append({"scene": i, "lang": lang, "kind": kind, "question": question(lang, kind),
                        "answer": answer(s, lang, kind), "candidates": candidates(lang, kind), "gold": s.label(kind)})
    return out


def udhr_texts(langs, articles) -> dict[str, list[str]]:
    """``{lang: [paragraph, ...]}``: the UDHR paragraphs of ``articles`` in each language's translation."""

    langs = check_languages(langs)
    code = {lang: templates()["languages"][lang]["udhr"] for lang in langs}
    table = udhr.udhr(sorted(set(code.values())))
    wanted = set(articles)
    by_code: dict[str, list[str]] = {}
    for c, a, t in zip(table["lang"], table["article"], table["text"]):
        if a in wanted:
            by_code.setdefault(c, []).append(t)
    return {lang: by_code.get(code[lang], []) for lang in langs}
