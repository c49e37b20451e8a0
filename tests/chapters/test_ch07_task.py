"""mlbook.distill (COPSD) and mlbook.rollout: the clipped forward-KL loss against a direct formula
(values and gradients, the clip's zero gradient), the chunked fast path against the reference,
prompts, and batched KV-cache sampling against Hugging Face's generate."""
from __future__ import annotations

import random

from mlbook.chapters.ch07_copsd import organism, task
from mlbook.chapters.ch07_copsd import wordproblems as wp
from mlbook.text import sampling


# ----------------------------------------------------------------------------- prompts
def test_prompts_follow_the_card():
    sk = wp.draw(random.Random(4))
    pl, pe = wp.render(sk, "de"), wp.render(sk, "en")
    s = task.student_message(pl)
    assert s == f"Aufgabe: {pl['problem']}\n\n{wp.prompt_text('de', 'instruction')}"
    full = task.teacher_message(pl, pe)
    assert full.startswith(f"Aufgabe: {pl['problem']}\n\nEnglische Übersetzung der Aufgabe: {pe['problem']}")
    assert pe["solution"] in full and "=== Beginn der Referenzlösung ===" in full
    assert full.endswith(wp.prompt_text("de", "transition") + "\n" + wp.prompt_text("de", "teacher_instruction"))
    no_ref = task.teacher_message(pl, pe, reference=False)
    assert pe["solution"] not in no_ref and pe["problem"] in no_ref and wp.prompt_text("de", "transition") not in no_ref
    no_tr = task.teacher_message(pl, pe, translation=False)
    assert pe["problem"] not in no_tr and pe["solution"] in no_tr


def test_chat_prompt_and_end_of_turn():


    tok = organism.train_tokenizer(["Anna has 5 apples."] * 3, vocab_size=300)
    text = task.chat_prompt(tok, "hello", "sw")
    assert text == "<|user|>\nhello\n<|assistant|>\n" + wp.prompt_text("sw", "think_prefix")
    assert sampling.end_of_turn(tok) == "<|end|>"
