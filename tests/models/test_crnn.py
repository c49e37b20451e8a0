"""mlbook.crnn: greedy CTC decoding worked by hand, shapes and the CTC loss against torch's on a direct
call, save/load round trip, deskew and line finding on rendered pages, and a short training run that
must learn a two-word vocabulary."""
import numpy as np
import pytest
import torch

from mlbook.chapters.ch10_glotocr import crnn_training
from mlbook.models import crnn
from mlbook.ocr import fonts, lines, metrics, render, typeset
from tests.apt_needs import needs_fonts

NOTO = fonts.NOTO_DIR
SANS = str(NOTO / "NotoSans-Regular.ttf")


def onehot(path, n_classes=4):
    """(1, T, C) scores with the maximum on the given class at each step."""
    x = torch.full((1, len(path), n_classes), -5.0)
    for t, k in enumerate(path):
        x[0, t, k] = 5.0
    return x


def test_greedy_decode():
    ab = "abc"  # class 1 = a, 2 = b, 3 = c, 0 = blank
    assert crnn.greedy_decode(onehot([1, 1, 0, 2, 2, 2]), ab) == ["ab"]     # repeats merge
    assert crnn.greedy_decode(onehot([1, 0, 1, 3]), ab) == ["aac"]          # a blank separates repeats
    assert crnn.greedy_decode(onehot([0, 0, 0]), ab) == [""]
    assert crnn.greedy_decode(onehot([1, 2, 3, 3]), ab, lengths=[2]) == ["ab"]  # padding steps ignored
    assert crnn.encode("abxc", ab) == [1, 2, 3]
    assert crnn.alphabet_of(["é a", "b"]) == "abe\u0301"                     # decomposed, no space
    al = "e\u0301"
    assert crnn.encode("é", al) == [1, 2] and crnn.greedy_decode(onehot([1, 2], 3), al) == ["é"]  # NFD in, NFC out


def tiny(alphabet="ab ", seed=0):
    torch.manual_seed(seed)
    return crnn.CRNNForCTC(crnn.CRNNConfig(alphabet=alphabet, channels=(8, 8, 8, 8, 16), hidden=16, scripts=["Latn"]))


def test_shapes_loss_and_round_trip(tmp_path):
    m = tiny().eval()
    x = torch.rand(2, 1, lines.HEIGHT, 64)
    out = m(x, labels=torch.tensor([1, 2, 3, 1]), label_lengths=torch.tensor([3, 1]), input_widths=[64, 40])
    assert out["logits"].shape == (2, 16, 4)                                 # T = W / 4, C = 1 + 3
    logp = out["logits"].log_softmax(-1).transpose(0, 1)
    ref = torch.nn.functional.ctc_loss(logp, torch.tensor([1, 2, 3, 1]), torch.tensor([16, 10]),
                                       torch.tensor([3, 1]), blank=0)
    assert out["loss"].item() == pytest.approx(ref.item())
    m.save_pretrained(tmp_path)
    again = crnn.CRNNForCTC.from_pretrained(tmp_path).eval()
    assert again.config.alphabet == "ab " and again.config.scripts == ["Latn"]
    assert torch.equal(m(x)["logits"], again(x)["logits"])


@needs_fonts
def test_deskew_and_line_crops():

    lay = typeset.layout("Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft", SANS)
    for seed in range(4):
        img = render.draw(lay, render.PLAIN, seed)
        angle = float(np.random.default_rng(seed).uniform(-1, 1))         # what draw rotated by
        assert lines.deskew_angle(np.asarray(img) < 128) == pytest.approx(-angle, abs=0.2)
        crops = lines.line_crops(img)
        assert len(crops) == len(lay.lines) == 3
        assert all(c.shape[0] == lines.HEIGHT and c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1 for c in crops)
        assert crops[2].shape[1] < crops[0].shape[1] / 2                   # "Vernunft" is a short last line
    from PIL import Image
    assert lines.line_crops(Image.new("L", (300, 80), 255)) == []


@needs_fonts
def test_training_learns_two_words():

    words = ["abba", "baab", "ab ba", "ba ab", "aab", "bba"]
    pages = [(render.draw(typeset.layout(w, SANS), render.PLAIN, i), [w]) for i, w in enumerate(words * 2)]
    samples = lines.samples_from_pages(pages)
    assert len(samples) == len(pages)
    torch.set_num_threads(1)
    model, losses = crnn_training.train(samples, "ab", steps=120, batch_size=6, lr=1e-2, seed=0, channels=(8, 16, 16, 16, 32),
                               hidden=32, progress=False)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    got = crnn.read_crops(model, [c for c, _ in samples[:6]])
    assert np.mean([metrics.cer(g, w) for g, w in zip(got, words)]) < 0.3          # spaces are not emitted: CER ignores them
