"""A model organism for chapter 7: a tiny Llama that learns, in a few CPU minutes, to solve the
templated word problems in English and — to a graded degree — in the target languages.

Real models bring two abilities to COPSD from their pre-training: reasoning in a high-resource
language, and reading a problem with help (a translation, a worked solution) in context.  The
organism gets both from a warm-up (SFT) corpus that we control:

- student-format conversations, "problem in L → solution in L", with graded amounts per language
  (lots of English, little of the lowest-resource language): the **resource level**;
- "reading with help" conversations in each target language: the teacher's prompt with the English
  translation and/or the English reference solution, answered in L (the parallel material).

The tokenizer is a byte-level BPE trained on that corpus (digits split one by one), saved as a
``PreTrainedTokenizerFast`` with a chat template, so the pair loads with ``from_pretrained`` and
goes through exactly the same prompt, rollout and loss code as SmolLM2 or Gemma-3.  The warm-up is
``mlbook.training.fit`` + ``mlbook.training.sft``; ``warm_start`` caches the trained checkpoint by its inputs.
"""
from __future__ import annotations

import random
from pathlib import Path

from mlbook.core.cache import key_of
from mlbook.core.context import seed_everything
from mlbook.models.loading import load_causal_lm
from mlbook.models.tiny_llama import tiny_llama
from mlbook.training.cached import read_log, trained_folder
from mlbook.training.checkpoint import save_pretrained
from mlbook.training.fit import fit
from mlbook.training.lora import add_lora
from mlbook.training.sft import sft_batches, sft_example, sft_loss

from . import wordproblems as wp
from .task import chat_prompt, completion_text, student_message, teacher_message

# what a cached model of this chapter is trained by: its source and its templates enter the cache key
TRAINED_BY = ("mlbook.chapters.ch07_copsd", "mlbook.models.tiny_llama", "data/07_copsd")
SPECIAL = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
                 "{% if m['role'] == 'assistant' %}{{ '<|end|>' }}{% endif %}{{ '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
VARIANTS = ({"translation": True, "reference": True}, {"translation": True, "reference": False},
            {"translation": False, "reference": True})


def corpus_skeletons(resources: dict[str, int], helped: dict[str, int], seed: int, min_steps: int = 1,
                     max_steps: int = 3) -> dict:
    """The warm-up problems: ``{"student": [(Skeleton, lang)], "helped": [(Skeleton, lang, variant)]}``.

    ``resources[lang]`` student-format problems per language, ``helped[lang]`` reading-with-help
    problems (the variant — translation, reference or both — drawn at random).  All distinct.
    """
    for lang in [*resources, *helped]:
        wp.language_name(lang)                                  # ValueError on an unknown language
    total = sum(resources.values()) + sum(helped.values())
    sks = iter(wp.problem_set(total, seed=seed, min_steps=min_steps, max_steps=max_steps))
    rng = random.Random(seed + 1)
    student = [(next(sks), lang) for lang, n in resources.items() for _ in range(n)]
    helped_out = [(next(sks), lang, rng.choice(VARIANTS) if lang != "en" else VARIANTS[2])   # English: no translation
                  for lang, n in helped.items() for _ in range(n)]
    return {"student": student, "helped": helped_out}


def warmup_problems(resources: dict[str, int], helped: dict[str, int], seed: int) -> set:
    """Every problem (Skeleton) the warm-up trains on, of both kinds: what a test or training set must exclude."""
    corpus = corpus_skeletons(resources, helped, seed)
    return {sk for sk, *_ in corpus["student"]} | {sk for sk, *_ in corpus["helped"]}


def unboxed(solution: str, answer: int) -> str:
    """The solution with its final ``\\boxed{answer}`` written as a bare number (``"... is 6."``)."""
    boxed = "\\boxed{%d}" % answer
    if boxed not in solution:
        raise ValueError(f"no {boxed} in the solution {solution!r}")
    return solution.replace(boxed, str(answer))


def conversations(skeletons: dict, boxed: dict[str, float] | None = None, seed: int = 0) -> list[dict]:
    """``[{"message", "lang", "solution"}]``: the user turn and the reference answer in L.

    ``boxed[L]``: the share of L's student-format solutions that end in ``\\boxed{}`` (default 1: all);
    the others state the answer as a bare number, as most text on the web does.  The format is part of
    a language's resource level: a low-resource language's few worked solutions rarely follow the
    instruction's format.  Reading-with-help conversations always carry it (they answer the teacher's
    instruction, whose format the high-resource material teaches).
    """
    boxed = boxed or {}
    for lang, share in boxed.items():
        wp.language_name(lang)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"boxed[{lang!r}] = {share} is not a share in [0, 1]")
    rng = random.Random(seed + 2)
    out = []
    for sk, lang in skeletons["student"]:
        pl = wp.render(sk, lang)
        solution = pl["solution"] if rng.random() < boxed.get(lang, 1.0) else unboxed(pl["solution"], sk.answer)
        out.append({"message": student_message(pl), "lang": lang, "solution": solution})
    for sk, lang, variant in skeletons["helped"]:
        pl, pe = wp.render(sk, lang), wp.render(sk, "en")
        out.append({"message": teacher_message(pl, pe, **variant), "lang": lang, "solution": pl["solution"]})
    return out


def train_tokenizer(texts: list[str], vocab_size: int = 1024, across_words: bool = True):
    """A byte-level BPE tokenizer trained on ``texts``: digits are single tokens, any UTF-8 text encodes.

    ``across_words``: merges may span spaces (as SentencePiece without whitespace splitting), so
    frequent phrases — the prompts' fixed instructions — become a few tokens and sequences get short.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                         use_regex=not across_words)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<|pad|>", eos_token="<|end|>",
                                  additional_special_tokens=["<|user|>", "<|assistant|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def organism_llama(tokenizer, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, d_ff: int | None = None,
                   max_len: int = 512, seed: int = 0):
    """A freshly initialised tiny Llama sized for the organism's tokenizer (tied embeddings; ``<|end|>`` ends a turn)."""
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    model = tiny_llama(len(tokenizer), d_model, n_layers, n_heads, d_ff=d_ff, max_len=max_len, seed=seed,
                       tie_word_embeddings=True, bos_token_id=None, eos_token_id=end,
                       pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0)
    model.generation_config.eos_token_id = end
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def sft_examples(tokenizer, convs: list[dict], max_len: int = 512, prompt_loss: bool = True) -> list[dict]:
    """Token ids + labels of each conversation, through the chat template (``prompt_loss``: every token
    is a training target, as in pre-training on documents; else the answer only)."""
    return [sft_example(tokenizer, chat_prompt(tokenizer, c["message"], c["lang"]),
                        completion_text({"solution": c["solution"]}, tokenizer), max_len, prompt_loss) for c in convs]


def warm_start(*, resources: dict[str, int], helped: dict[str, int], boxed: dict[str, float] | None = None,
               seed: int = 0, base: str | None = None,
               vocab_size: int = 1024, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, epochs: float = 2.0,
               batch_size: int = 32, lr: float = 3e-3, warmup: int = 50, prompt_loss: bool = True,
               lora_r: int = 64, device: str = "cpu", accelerator=None, progress: bool = True) -> Path:
    """Build (once) and return the cached folder of the warmed-up start model: ``model/`` (model +
    tokenizer, ``from_pretrained`` loads both) and its training log (loss curve, corpus sizes).

    ``base=None``: the organism — a tokenizer trained on the corpus and a fresh tiny Llama
    (``vocab_size``, ``d_model``, ``n_layers``, ``n_heads``), fully trained.  ``base="<checkpoint>"``:
    a real model (any name ``mlbook.models.load_causal_lm`` resolves) warmed up with LoRA adapters of
    rank ``lora_r`` on the same corpus, then merged — the same data and loss for both.
    ``boxed``: the share of each language's student-format solutions in the ``\\boxed{}`` format (``conversations``).
    Cached under a key of every argument that changes the result.
    """
    args = dict(resources=resources, helped=helped, seed=seed, base=base, epochs=epochs, batch_size=batch_size,
                lr=lr, warmup=warmup, prompt_loss=prompt_loss, boxed=boxed or {})
    args.update(dict(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads) if base is None
                else dict(lora_r=lora_r))

    def build(folder: Path, ckpt: Path) -> dict:
        seed_everything(seed)
        convs = conversations(corpus_skeletons(resources, helped, seed), boxed, seed)
        if base is None:
            tok = train_tokenizer([c["message"] + "\n" + c["solution"] for c in convs]
                                  + [wp.prompt_text(c["lang"], "think_prefix") for c in convs], vocab_size)
            model = organism_llama(tok, d_model, n_layers, n_heads, seed=seed)
        else:
            model, tok = load_causal_lm(base, device=device)
            model = add_lora(model, r=lora_r, alpha=2 * lora_r)
        examples = sft_examples(tok, convs, prompt_loss=prompt_loss)
        batches = sft_batches(examples, batch_size, epochs=epochs, seed=seed, pad_id=tok.pad_token_id)
        hist = fit(model, sft_loss, batches, steps=len(batches), lr=lr, warmup=warmup, schedule="cosine",
                   weight_decay=0.01, seed=seed, progress=progress, desc="warm-up (SFT)", accelerator=accelerator)
        save_pretrained(model, tok, folder / "model")                  # LoRA: merged into the weights
        info = {"args": args, "n_conversations": len(convs), "n_tokens": sum(len(e["input_ids"]) for e in examples),
                "params": sum(p.numel() for p in model.parameters()), "loss": hist["loss"], "seconds": hist["seconds"]}
        return info

    return trained_folder(f"copsd/start-{key_of(args)}", build, code=TRAINED_BY)[0]


def load(folder: Path, device: str = "cpu"):
    """``(model, tokenizer, info)`` of a folder written by ``warm_start`` or ``mlbook.training.cached.fit_cached``:
    ``model/`` loads with ``from_pretrained``; ``info`` is its training log."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    tok = AutoTokenizer.from_pretrained(folder / "model")
    model = AutoModelForCausalLM.from_pretrained(folder / "model").to(device).eval()
    return model, tok, read_log(folder)
