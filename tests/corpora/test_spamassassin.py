"""The SpamAssassin reader: decoding, what is dropped, the table."""
import numpy as np

from mlbook.corpora import spamassassin as sa

RAW_HTML = b"""From x@y  Thu Aug 22 13:17:22 2002
Return-Path: <x@y>
X-Spam-Status: Yes, hits=12.3
Subject: =?iso-8859-1?q?Gr=FC=DFe_und_Geld?=
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<html><head><title>t</title><style>p {color: red}</style></head><body><p>Make   money =\r
fast</p><p>Click&nbsp;<b>here</b> &amp; now</p><script>alert(1)</script></body></html>
"""

RAW_MULTI = b"""From: a@b
Subject: Re: [SAtalk] rules
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX"

--XX
Content-Type: text/plain; charset=utf-8

Plain   words here.
--XX
Content-Type: text/html

<p>HTML words</p>
--XX--
"""


def test_parse_decodes_and_drops_headers_scripts_and_styles():
    subject, body = sa.parse(RAW_HTML)
    assert subject == "Grüße und Geld"
    assert body == "Make money fast\nClick here & now"
    assert "Spam" not in body and "alert" not in body and "color" not in body


def test_parse_prefers_the_plain_part():
    assert sa.parse(RAW_MULTI) == ("Re: [SAtalk] rules", "Plain words here.")


def test_corpus_table():
    ds = sa.spamassassin()
    assert 5800 < len(ds) < 6046  # 6,046 files, exact duplicates kept once
    assert len(set(ds["text"])) == len(ds) and len(set(ds["id"])) == len(ds)
    labels = dict(zip(ds["group"], ds["label"]))
    assert labels == {"easy-ham-1": 0, "easy-ham-2": 0, "hard-ham-1": 0, "spam-1": 1, "spam-2": 1}
    assert 0.28 < np.mean(ds["label"]) < 0.33
    assert not any("X-Spam" in t[:200] or t.startswith("From ") for t in ds["text"][:500])
