"""mlbook.ocr_engines: Tesseract in batch mode (order kept, one model load), script packs chosen per
line, the Latin-only model's hallucination on Devanagari, RapidOCR on English, the CRNN wrapper, and a
clear message where a VLM or a language pack is missing."""
import pytest

from mlbook.models import crnn
from mlbook.ocr import engines as oe
from mlbook.ocr import fonts, metrics, render, typeset
from tests.apt_needs import needs_fonts, needs_tess, needs_tess_deva

NOTO = fonts.NOTO_DIR
SANS = str(NOTO / "NotoSans-Regular.ttf")
DEVA = str(NOTO / "NotoSansDevanagari-Regular.ttf")


def page(text, font, seed=1):

    return render.draw(typeset.layout(text, font), render.PLAIN, seed)


def test_missing_pack_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(oe, "tesseract_languages", lambda: frozenset({"eng"}))
    with pytest.raises(oe.EngineUnavailable, match="apt-get install tesseract-ocr-script-deva"):
        oe.tesseract_batch([object()], "Devanagari")
    with pytest.raises(oe.EngineUnavailable, match="apt-get install tesseract-ocr-script-latn"):
        oe.TesseractScript()


def test_knows():
    e = oe.Engine()
    e.trained = frozenset({"Latn", "Hans", "Hang"})
    assert e.knows("Latn") and e.knows("Hans") and e.knows("Kore") and not e.knows("Hant")
    assert not e.knows("Jpan") and not e.knows(None)


@needs_fonts
@needs_tess
@needs_tess_deva
def test_tesseract_batch_and_packs():
    a, b = "The quick brown fox jumps over the lazy dog.", "Everyone has the right to life."
    got = oe.tesseract_batch([page(a, SANS), page(b, SANS, 2)], "eng")
    assert metrics.cer(got[0], a) <= 0.05 and metrics.cer(got[1], b) <= 0.05, got   # two pages, in order
    assert oe.tesseract_read(page(b, SANS, 2), "eng") == got[1]               # batch = one by one
    with pytest.raises(oe.EngineUnavailable, match="apt-get install tesseract-ocr-xyz"):
        oe.tesseract_batch([page(a, SANS)], "xyz")
    hin = "सभी मनुष्यों को गौरव और अधिकारों के मामले में"
    eng_reading = oe.TesseractEng().read([page(hin, DEVA)])[0]
    # the Latin-only model reads Devanagari as Latin letters/digits: a hallucination, not an empty answer
    assert metrics.hallucination_class(eng_reading, "Deva", metrics.cer(eng_reading, hin)) in ("wrong_script", "artefact")
    ts = oe.TesseractScript()
    assert ts.lang_for("Deva") == "Devanagari" and ts.lang_for("Xyzw") == "Latin" and ts.knows("Deva")
    assert metrics.cer(ts.read([page(hin, DEVA)], ["Deva"])[0], hin) <= 0.1
    with pytest.raises(ValueError, match="needs each image's script"):
        ts.read([page(hin, DEVA)])


@needs_fonts
def test_rapidocr_reads_english():
    text = "Everyone has the right to life, liberty and security of person."
    got = oe.RapidOCR(threads=1).read([page(text, SANS)])[0]
    assert metrics.cer(got, text) <= 0.05, got


@needs_fonts
def test_crnn_engine_joins_lines():
    import torch

    torch.manual_seed(0)
    m = crnn.CRNNForCTC(crnn.CRNNConfig(alphabet="ab", channels=(4, 4, 4, 4, 8), hidden=4, scripts=["Latn"]))
    e = oe.CRNN(m)

    n_lines = len(typeset.layout("ab " * 40, SANS).lines)
    out = e.read([page("ab " * 40, SANS)])[0]
    assert n_lines > 1 and out.count("\n") == n_lines - 1                     # one reading per line, in order
    assert e.trained == {"Latn"} and set(out) <= set("ab\n")                  # its alphabet only
    two = [page("ab " * 40, SANS), page("ba " * 12, SANS)]
    assert e.read(two) == [e.read([two[0]])[0], e.read([two[1]])[0]]          # one batch, pages kept apart


def test_vlm_unavailable_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(oe.EngineUnavailable, match="no image-text-to-text model 'no-such/model-xyz'"):
        oe.VLM("no-such/model-xyz")
    with pytest.raises(oe.EngineUnavailable, match="local folder"):
        oe.VLM(str(tmp_path / "missing"))


def _tiny_llava(folder):
    """A random, tiny LLaVA (CLIP vision tower + Llama) with a character-level tokenizer and a chat
    template, saved as a folder that AutoProcessor / AutoModelForImageTextToText load."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<image>", "<pad>"] + [chr(c) for c in range(32, 127)])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    tok.add_tokens(["<image>"], special_tokens=True)
    chat = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}"
            "{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %}:{% endif %}")
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=chat,
                          image_token="<image>", num_additional_image_tokens=1)
    cfg = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, image_size=32, patch_size=8),
                      text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1),
                      image_token_index=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(folder)
    proc.save_pretrained(folder)
    return str(folder)


def test_vlm_reads_with_a_tiny_random_model(tmp_path, monkeypatch):
    """The VLM code path end to end (chat template, image processor, generate, decode of the new tokens)
    on a random tiny LLaVA: it answers something, one string per image; what it says is noise."""
    from PIL import Image
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = oe.VLM(_tiny_llava(tmp_path / "tiny-llava"), max_new_tokens=4)
    out = e.read([Image.new("L", (200, 60), 255), Image.new("L", (90, 40), 0)])
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert e.name == "vlm:tiny-llava" and e.knows("Latn")
