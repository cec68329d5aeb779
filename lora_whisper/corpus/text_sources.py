"""Sentences per language from Debian packages, fetched with `apt-get download`.

Nothing is installed: each .deb is kept in `cache_dir("debian", "debs")`, unpacked into a
temporary directory, read by the extractor for its format, and the filtered sentence list
is cached as one text file per language in `cache_dir("text")`. A second build reads only
that file. No extracted text ever lands in the repository.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lora_whisper.corpus.extractors import EXTRACTORS
from lora_whisper.corpus.filters import clean_sentences, split_sentences
from lora_whisper.errors import UserError
from lora_whisper.paths import cache_dir

# Bump when extraction or filtering changes, so stale caches are not reused.
TEXT_VERSION = 5


@dataclass(frozen=True)
class Source:
    package: str
    extractor: str  # key of EXTRACTORS
    licence: str


_LO = "MPL-2.0"
_FORTUNE = "BSD/GPL/public domain (see the package copyright file)"


def _help(code: str) -> Source:
    return Source(f"libreoffice-help-{code}", "libreoffice-help", _LO)


SOURCES: dict[str, tuple[Source, ...]] = {
    "pl": (_help("pl"), Source("fortunes-pl", "fortunes", _FORTUNE)),
    "pt": (_help("pt"), Source("fortunes-br", "fortunes", _FORTUNE)),
    "it": (_help("it"), Source("fortunes-it", "fortunes", _FORTUNE)),
    "zh": (_help("zh-cn"),),
    "da": (_help("da"),),
    "el": (_help("el"),),
    # no Welsh help exists; UI catalogs give shorter but genuine Welsh sentences
    "cy": (
        Source("libreoffice-l10n-cy", "gettext-mo", _LO),
        Source("firefox-esr-l10n-cy", "mozilla-langpack", "MPL-2.0"),
        Source("thunderbird-l10n-cy", "mozilla-langpack", "MPL-2.0"),
    ),
    "ja": (_help("ja"),),
    "en": (
        Source("fortunes-min", "fortunes", _FORTUNE),
        Source("fortunes", "fortunes", _FORTUNE),
        _help("en-us"),
    ),
    "de": (_help("de"), Source("fortunes-de", "fortunes", _FORTUNE)),
    "es": (_help("es"), Source("fortunes-es", "fortunes", _FORTUNE)),
    "ru": (_help("ru"), Source("fortunes-ru", "fortunes", _FORTUNE)),
    "nl": (_help("nl"),),
}


def supported_languages() -> list[str]:
    return sorted(SOURCES)


def _sources(lang: str) -> tuple[Source, ...]:
    if lang not in SOURCES:
        raise UserError(
            f"no text source for language {lang!r}; languages with one: "
            f"{', '.join(supported_languages())} (or pass sentences directly)"
        )
    return SOURCES[lang]


def cache_path(lang: str) -> Path:
    return cache_dir("text") / f"{lang}.v{TEXT_VERSION}.txt"


def fetch_deb(package: str, lang: str) -> Path:
    """The package's .deb from the cache, downloaded with `apt-get download` if absent."""
    debs = cache_dir("debian", "debs")
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise UserError(
            f"cannot fetch Debian package {package!r} (text for language {lang!r}): "
            "apt-get is not available on this machine"
        )
    # download into a scratch dir so an interrupted fetch never looks like a cached .deb
    with tempfile.TemporaryDirectory(dir=debs, prefix=".fetch-") as tmp:
        proc = subprocess.run(
            ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True
        )
        got = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not got:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            reason = said[-1] if said else f"exit status {proc.returncode}"
            raise UserError(
                f"cannot fetch Debian package {package!r} (text for language {lang!r}): "
                f"{reason}. Try `apt-get update`, or check that the package exists in "
                "your apt sources (`apt-cache policy " + package + "`)."
            )
        final = debs / got[0].name
        os.replace(got[0], final)
    return final


def _unpack(deb: Path, dest: Path) -> None:
    tool = shutil.which("dpkg-deb")
    if tool is None:
        raise UserError(f"cannot unpack {deb.name}: dpkg-deb is not available")
    proc = subprocess.run([tool, "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot unpack {deb}: {proc.stderr.strip()}")


def sentences_from_tree(root: Path, extractor: str, lang: str) -> list[str]:
    """Filtered, de-duplicated sentences of one unpacked package (testable on a tiny tree)."""
    candidates = []
    for raw in EXTRACTORS[extractor](Path(root)):
        candidates.extend(split_sentences(raw, lang))
    return clean_sentences(candidates, lang)


def extract_language(lang: str) -> tuple[list[str], dict]:
    """Fetch, unpack and filter every source of `lang`; returns sentences and provenance."""
    sentences: list[str] = []
    provenance = {"language": lang, "version": TEXT_VERSION, "sources": []}
    scratch = cache_dir("debian")
    for src in _sources(lang):
        deb = fetch_deb(src.package, lang)
        with tempfile.TemporaryDirectory(dir=scratch, prefix=f".unpack-{src.package}-") as d:
            _unpack(deb, Path(d))
            found = sentences_from_tree(Path(d), src.extractor, lang)
        sentences.extend(found)
        provenance["sources"].append(
            {"deb": deb.name, "extractor": src.extractor, "licence": src.licence,
             "sentences": len(found)}
        )
    sentences = clean_sentences(sentences, lang, check=False)  # de-dup across packages
    provenance["sentences"] = len(sentences)
    return sentences, provenance


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_sentences(lang: str, refresh: bool = False) -> list[str]:
    """The cached sentence list of `lang`, built from Debian packages on first use."""
    _sources(lang)
    path = cache_path(lang)
    if path.exists() and not refresh:
        return [line for line in path.read_text("utf-8").splitlines() if line]
    sentences, provenance = extract_language(lang)
    if not sentences:
        raise UserError(f"no usable {lang!r} sentence found in {provenance['sources']}")
    _write_atomic(path, "".join(s + "\n" for s in sentences))
    _write_atomic(path.with_suffix(".json"), json.dumps(provenance, indent=2) + "\n")
    return sentences
