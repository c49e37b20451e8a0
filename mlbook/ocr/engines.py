"""OCR engines behind one interface, for the GlotOCR chapter.

    engine.read(images, scripts) -> list[str]   one reading per PIL image (scripts: the GT script of each)
    engine.trained                              the scripts (ISO 15924) the engine was trained for
    engine.knows(script)                        script in trained (Kore = Hang, Hira/Kana = Jpan)

Engines: Tesseract with the script pack of each line's script (Debian tesseract-ocr-script-*; its Latin
pack where a script has none), Tesseract's Latin-only English model on every script, RapidOCR
(PaddleOCR's Chinese/English ONNX models), a CRNN (``mlbook.models.crnn``, trained in chapter 10), and any transformers
image-text-to-text model (a VLM) from a local folder or the local Hugging Face cache.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from mlbook.models.hub import local_checkpoint

from .lines import read_pages

# Codes that name the same trained writing system: Korean Hangul, Japanese kana (not Han: a Chinese
# model is not trained for Japanese, whose kana it may lack)
_ALIAS = {"Kore": "Hang", "Hira": "Jpan", "Kana": "Jpan"}

# ISO 15924 → Tesseract script pack (Debian package tesseract-ocr-script-<code in lower case>)
TESS_SCRIPT_PACKS = {
    "Arab": "Arabic", "Armn": "Armenian", "Beng": "Bengali", "Cans": "Canadian_Aboriginal", "Cher": "Cherokee",
    "Cyrl": "Cyrillic", "Deva": "Devanagari", "Ethi": "Ethiopic", "Geor": "Georgian", "Grek": "Greek",
    "Gujr": "Gujarati", "Guru": "Gurmukhi", "Hang": "Hangul", "Hans": "HanS", "Hani": "HanS", "Hant": "HanT",
    "Hebr": "Hebrew", "Jpan": "Japanese", "Khmr": "Khmer", "Knda": "Kannada", "Laoo": "Lao", "Latn": "Latin",
    "Mlym": "Malayalam", "Mymr": "Myanmar", "Orya": "Oriya", "Sinh": "Sinhala", "Syrc": "Syriac", "Taml": "Tamil",
    "Telu": "Telugu", "Thaa": "Thaana", "Thai": "Thai", "Tibt": "Tibetan",
}
_PAGE = "\n<<<glotocr-page>>>\n"  # Tesseract's page separator in batch mode


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (a missing program, package, language pack or model)."""


class Engine:
    name = "engine"
    trained: frozenset = frozenset()

    def knows(self, script: str | None) -> bool:
        """Was the engine trained for this script? (Chinese as Hans, Hant or Hani: list each.)"""
        return script is not None and _ALIAS.get(script, script) in {_ALIAS.get(t, t) for t in self.trained}

    def read(self, images, scripts=None) -> list[str]:
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


# ------------------------------------------------------------------------------------------ Tesseract


@lru_cache(maxsize=1)
def tesseract_languages() -> frozenset:
    """The traineddata Tesseract has installed (e.g. 'eng', 'Latin', 'Devanagari')."""
    try:
        out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        raise EngineUnavailable("tesseract not found: apt-get install tesseract-ocr") from e
    return frozenset(ln.strip() for ln in out.stdout.splitlines()[1:] if ln.strip())


def tesseract_batch(images, lang: str, psm: int = 6) -> list[str]:
    """Read many images with one Tesseract process (the model loads once): a list file of PNGs,
    pages separated by a marker. psm 6 = one uniform block of text."""
    if not images:
        return []
    missing = [c for c in lang.split("+") if c not in tesseract_languages()]
    if missing:
        pkgs = " ".join(f"tesseract-ocr-{c.lower().replace('_', '-')}" if c.islower() else
                        f"tesseract-ocr-script-{next((k for k, v in TESS_SCRIPT_PACKS.items() if v == c), c).lower()}"
                        for c in missing)
        raise EngineUnavailable(f"Tesseract traineddata missing for {missing}: apt-get install {pkgs}")
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, img in enumerate(images):
            paths.append(os.path.join(d, f"{i:05d}.png"))
            img.save(paths[-1])
        Path(d, "list.txt").write_text("\n".join(paths) + "\n")
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        out = subprocess.run(["tesseract", os.path.join(d, "list.txt"), "stdout", "-l", lang, "--psm", str(psm),
                              "-c", f"page_separator={_PAGE}"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"tesseract failed ({out.returncode}): {out.stderr[-500:]}")
    pages = out.stdout.split(_PAGE.strip())
    pages = [p.strip() for p in pages]
    if len(pages) == len(images) + 1 and not pages[-1]:
        pages = pages[:-1]
    if len(pages) != len(images):
        raise RuntimeError(f"tesseract returned {len(pages)} pages for {len(images)} images")
    return pages


def tesseract_read(image, lang: str = "eng", psm: int = 6) -> str:
    """One image through Tesseract."""
    return tesseract_batch([image], lang, psm)[0]


class TesseractScript(Engine):
    """Tesseract with the script pack of each line's GT script; the Latin pack where none is installed."""
    name = "tess_script"

    def __init__(self, fallback: str = "Latin"):
        have = tesseract_languages()
        self.packs = {s: p for s, p in TESS_SCRIPT_PACKS.items() if p in have}
        if fallback not in have:
            raise EngineUnavailable(f"Tesseract has no {fallback!r} pack: apt-get install tesseract-ocr-script-latn")
        self.fallback = fallback
        self.trained = frozenset(self.packs)

    def lang_for(self, script: str | None) -> str:
        return self.packs.get(script, self.fallback)

    def read(self, images, scripts=None):
        if scripts is None:
            raise ValueError("TesseractScript needs each image's script to pick its pack")
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(scripts):
            groups.setdefault(self.lang_for(s), []).append(i)
        out = [""] * len(images)
        for lang, idx in groups.items():
            for i, text in zip(idx, tesseract_batch([images[i] for i in idx], lang)):
                out[i] = text
        return out


class TesseractEng(Engine):
    """Tesseract's English model (Latin letters only) on every script."""
    name = "tess_eng"
    trained = frozenset({"Latn"})

    def __init__(self):
        if "eng" not in tesseract_languages():
            raise EngineUnavailable("Tesseract has no 'eng' model: apt-get install tesseract-ocr-eng")

    def read(self, images, scripts=None):
        return tesseract_batch(list(images), "eng")


# ------------------------------------------------------------------------------------------ RapidOCR


class RapidOCR(Engine):
    """RapidOCR (rapidocr-onnxruntime): PP-OCRv4 text detection + the Chinese/English recogniser.
    Detection at the image's own resolution (longest side ≤ 1024 px) and no angle classifier: our
    lines are upright; RapidOCR's default would upsample the short side to 736 px (4× slower)."""
    name = "rapidocr"
    trained = frozenset({"Latn", "Hans", "Hant", "Hani"})

    def __init__(self, threads: int = 1):
        try:
            from rapidocr_onnxruntime import RapidOCR as _R
        except ImportError as e:
            raise EngineUnavailable("pip install rapidocr-onnxruntime") from e
        # one thread: on shared cores onnxruntime's spinning second thread doubles the time per image
        self._ocr = _R(det_limit_type="max", det_limit_side_len=1024, use_cls=False,
                       intra_op_num_threads=threads, inter_op_num_threads=1)

    def read(self, images, scripts=None):
        import numpy as np
        out = []
        for img in images:
            res, _ = self._ocr(np.asarray(img.convert("RGB")))
            out.append("\n".join(r[1] for r in res) if res else "")
        return out


# ------------------------------------------------------------------------------------------ CRNN


class CRNN(Engine):
    """A CRNN-CTC (``mlbook.models.crnn``), trained on config.scripts."""

    def __init__(self, model, name: str = "crnn"):
        self.model, self.name = model, name
        self.trained = frozenset(model.config.scripts)

    def read(self, images, scripts=None):
        return read_pages(self.model, images)


# ------------------------------------------------------------------------------------------ VLM

VLM_PROMPT = ("Transcribe all the text in this image exactly as written, in its original script. "
              "Output only the text, nothing else.")


def _local_model(name: str) -> str:
    """A local folder for name (the folder itself or its snapshot in the local HF cache). Never downloads
    (the chapter runs offline); raises EngineUnavailable otherwise."""
    folder = local_checkpoint(name)
    if folder is None:
        raise EngineUnavailable(f"no image-text-to-text model {name!r} in a local folder or the local Hugging Face "
                                "cache (download it once with `huggingface-cli download <id>` on a machine with network)")
    return str(folder)


class VLM(Engine):
    """A transformers image-text-to-text model (Qwen2.5-VL, Gemma 3, SmolVLM, ...) asked to transcribe;
    greedy decoding. trained: unknown (the paper's tiers stand in for its pretraining coverage)."""

    def __init__(self, name: str, device: str = "cpu", max_new_tokens: int = 256, trained=("Latn",)):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        folder = _local_model(name)
        self.name, self.device, self.max_new_tokens = f"vlm:{Path(name).name}", device, max_new_tokens
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, dtype=dtype).to(device).eval()
        self.trained = frozenset(trained)

    def read(self, images, scripts=None):
        import torch
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": VLM_PROMPT}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        out = []
        for img in images:
            inputs = self.processor(images=[img.convert("RGB")], text=prompt, return_tensors="pt").to(self.device)
            with torch.no_grad():
                ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = ids[0, inputs["input_ids"].shape[1]:]
            out.append(self.processor.decode(new, skip_special_tokens=True).strip())
        return out
