"""OCR as GlotOCR measures it: ``metrics`` (six-variant CER, Acc@t, hallucination classes),
``scripts`` (the script of a text, tiers, right-to-left), ``fonts`` (installed fonts, cmaps,
ground-truth cleaning), ``typeset`` (HarfBuzz shaping, wrapping, FreeType rasterising), ``fontchoice``
(the per-script font: coverage + a glyph check), ``render`` (the PLAIN and OLD_DOCUMENT profiles and
their degradations), ``lines`` (text-line crops of a page), ``engines`` (Tesseract, RapidOCR, a CRNN,
a VLM behind one interface).  Heavy imports (fontTools, uharfbuzz, freetype) live inside the functions
that need them."""
