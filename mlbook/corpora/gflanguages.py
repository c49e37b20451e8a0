"""Google Fonts' sample texts per language and script (PyPI ``gflanguages``)."""
from __future__ import annotations

from importlib.metadata import version as _pkg_version
from pathlib import Path

from .tables import cached_dataset


def _build_gflanguages(folder: Path) -> dict:
    from datasets import Dataset
    from gflanguages import LoadLanguages, LoadScripts

    scripts = LoadScripts()
    fields = ("specimen_32", "specimen_36", "poster_md", "tester", "specimen_48", "styles")
    rows = []
    for lid, lang in sorted(LoadLanguages().items()):
        if not lang.HasField("sample_text"):
            continue
        st = lang.sample_text
        sample = max((getattr(st, f) for f in fields), key=len)
        rows.append({"id": lid, "language": lang.language, "script": lang.script,
                     "script_name": scripts[lang.script].name if lang.script in scripts else "",
                     "name": lang.name, "autonym": lang.autonym, "population": int(lang.population),
                     "regions": list(lang.region), "exemplar_chars": lang.exemplar_chars.base, "sample": sample})
    Dataset.from_list(rows).save_to_disk(str(folder / "table"))
    return {"languages": len(rows)}


def samples(min_chars: int = 0):
    """Google Fonts' sample text per language: id (``de_Latn``), language, script, script_name,
    name, autonym, population, regions, exemplar_chars, sample.  Keeps samples of ``min_chars`` or more."""
    ds = cached_dataset("gflanguages", {"gflanguages": _pkg_version("gflanguages")}, _build_gflanguages)
    if min_chars > 0:
        import pyarrow.compute as pc

        long_enough = pc.greater_equal(pc.utf8_length(ds.data.column("sample")), min_chars)
        ds = ds.select(long_enough.to_numpy(zero_copy_only=False).nonzero()[0], keep_in_memory=True)
    return ds
