"""Which strings count as a speakable sentence of a language.

Text extracted from help pages, fortunes and UI catalogs is mostly not prose: menu paths,
key names, placeholders, untranslated English. A TTS voice reads those badly and a
recogniser cannot be expected to spell them, so anything doubtful is dropped; there is
far more text than a benchmark needs.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Punctuation a sentence may carry; any other symbol (%, $, {, <, &, /, =, _, #, @, ~,
# digits...) marks code, markup, a placeholder or a number the voice would read oddly.
_LATIN_PUNCT = set(" .,;:!?'\"()«»„“”‚‘’–—…-")
_CJK_PUNCT = set("。、，！？：；「」『』（）《》・“”‘’…—")
_GREEK_PUNCT = {"·", "\u0387"}


@dataclass(frozen=True)
class ScriptRule:
    """What a sentence in one language may be written with."""

    scripts: frozenset[str]  # Unicode name prefixes of the allowed letters
    alphabet: str = ""  # Latin languages: every lowercase letter must be in here
    markers: frozenset[str] = field(default_factory=frozenset)  # frequent function words
    marker_letters: str = ""  # or: letters only this language uses
    needs_kana: bool = False
    cjk: bool = False  # no spaces between words: length counted in characters
    cased: bool = True


_ASCII = "abcdefghijklmnopqrstuvwxyz"


def _latin(extra: str, markers: str, marker_letters: str = "") -> ScriptRule:
    return ScriptRule(
        scripts=frozenset({"LATIN"}),
        alphabet=_ASCII + extra,
        markers=frozenset(markers.split()),
        marker_letters=marker_letters,
    )


# Markers are a language's frequent short words, false friends of English included
# ("will", "was" in German, "to" in Polish) so they never count as English below.
RULES: dict[str, ScriptRule] = {
    "en": _latin("", "the a of and to is in it you that for with on this are be"),
    "pl": _latin("ąćęłńóśźż", "i w z na się nie jest do to że po od jak aby a on my we", "ąćęłńśźż"),
    "pt": _latin(
        "ãõçáéíóúâêôàü", "de o a que e do da em para um uma não os as se com no me", "ãõç"
    ),
    "it": _latin(
        "àèéìòùíóú", "il di che e la per un una non del della è le si con a in no me come",
        "àèìòù",
    ),
    "da": _latin(
        "æøåéü", "og i at det er en til på med af for som den de ikke over set to her", "æøå"
    ),
    "cy": _latin(
        "âêîôûŵŷáéíóúàèìòùäëïöüẅÿ",
        "y yr yn a i o ar eich mae gyda ei wedi neu hwn hon ac ydy fydd at",
        "ŵŷ",
    ),
    "de": _latin(
        "äöüß",
        "der die das und ist nicht sie zu ein eine mit den von auf es ich will also was an in",
        "äöüß",
    ),
    "es": _latin(
        "ñáéíóúü", "el la de que y en los las un una por para con es se no a me has son he", "ñ"
    ),
    "nl": _latin("éëïöüáèàç", "de het een en van is niet op te dat voor met in was over we", ""),
    "el": ScriptRule(scripts=frozenset({"GREEK"})),
    "ru": ScriptRule(scripts=frozenset({"CYRILLIC"})),
    "zh": ScriptRule(scripts=frozenset({"CJK"}), cjk=True, cased=False),
    "ja": ScriptRule(
        scripts=frozenset({"CJK", "HIRAGANA", "KATAKANA"}), needs_kana=True, cjk=True, cased=False
    ),
}

# Frequent English words: untranslated strings (and Basic comments) hide in translated
# help. A sentence with more of these than of its own language's markers is English.
_ENGLISH = frozenset("""
the of and is you that with this are be by from or not can will if an which your have has
for to on in at all when into only more other then these also there would should what was
were been their they them it its how after before about such may must any some do does make
want need see used use select click enter press choose returns specifies displays shows following
never just like than out up get got his her she he we our who people good know think said because
could very much where why first last line lines break single except character each every takes
""".split())

# Mixed-case words are identifiers or glued alternatives ("NombreAntiguo"), except
# these product names, which help texts use everywhere.
_CAMEL_OK = frozenset(
    "LibreOffice OpenOffice LibreLogo OpenDocument PowerPoint JavaScript PostScript "
    "OpenPGP OpenGL TrueType OpenType MathML WordPad".split()
)


def _mixed_case(word: str) -> bool:
    return any(a.islower() and b.isupper() for a, b in zip(word, word[1:]))


# Old ASCII Italian writes "perche'" for "perché": not the spelling to score against
_APOSTROPHE_ACCENT_RE = re.compile(r"[aeiou]'(?=$|[\s.,;:!?])")

MIN_WORDS, MAX_WORDS = 5, 25
MIN_CJK_CHARS, MAX_CJK_CHARS = 8, 45
# 25 long words at espeak's slowest drawn rate, slowed by tempo 0.9, run past 15 s
MAX_CHARS = 140

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_DOTTED_RE = re.compile(r"\w\.\w")  # URLs, file names, "e.g." -- all read badly


def normalize(text: str) -> str:
    """NFC, one space between words, no soft hyphens or zero-width marks."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u00ad", "").replace("\u200b", "").replace("\ufeff", "")
    text = " ".join(text.split())
    # extraction leaves "word ." where an inline element was dropped before the stop
    return re.sub(r"(?<=\w) ([.,;:!?])(?!\S)", r"\1", text)


def dedup_key(text: str) -> str:
    return " ".join(normalize(text).casefold().split())


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    if name.startswith("CJK") or ch in "々〆":
        return "CJK"
    if name.startswith("KATAKANA-HIRAGANA") or name.startswith("HALFWIDTH KATAKANA"):
        return "KATAKANA"
    return name.split(" ", 1)[0]


def split_sentences(text: str, lang: str) -> list[str]:
    """Paragraph -> sentences; a naive splitter is enough since doubtful pieces are dropped."""
    text = normalize(text)
    if not text:
        return []
    if RULES.get(lang, RULES["en"]).cjk:
        parts = re.split(r"(?<=[。！？])", text)
    elif lang == "el":
        parts = re.split(r"(?<=[.!;;…])\s+", text)
    else:
        parts = re.split(r"(?<=[.!?…])\s+(?=[\"'«„“(]?[^\W\d_])", text)
    return [p.strip() for p in parts if p.strip()]


def reject_reason(text: str, lang: str) -> str | None:
    """Why `text` is not a usable sentence of `lang` (None when it is)."""
    rule = RULES.get(lang)
    if rule is None:
        return f"no script rule for language {lang!r}"
    text = normalize(text)
    if not text:
        return "empty"
    kana = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "N":
            return "digit"
        if cat[0] == "L":
            script = _script(ch)
            if script not in rule.scripts:
                return f"letter {ch!r} outside the {lang} script"
            if rule.alphabet and ch.lower() not in rule.alphabet:
                return f"letter {ch!r} not in the {lang} alphabet"
            kana += script in ("HIRAGANA", "KATAKANA")
        elif ch not in _LATIN_PUNCT and ch not in _CJK_PUNCT and ch not in _GREEK_PUNCT:
            return f"symbol {ch!r}"
    if text.startswith("' "):
        return "Basic comment"
    if rule.needs_kana and not kana:
        return "no kana (Chinese, not Japanese)"
    if _DOTTED_RE.search(text):
        return "dotted token (URL, file name, abbreviation)"
    if text.count(" - ") >= 2 or text.count(" - ") + text.count(" – ") >= 3:
        return "menu path"
    if re.search(r"\w\(|\)\w", text):
        return "bracket inside a word"
    if text.count("(") != text.count(")") or text.count("«") != text.count("»"):
        return "unbalanced brackets"
    if rule.cjk:
        n = sum(unicodedata.category(c)[0] == "L" for c in text)
        if not MIN_CJK_CHARS <= n <= MAX_CJK_CHARS:
            return f"{n} characters"
    else:
        words = _WORD_RE.findall(text)
        if not MIN_WORDS <= len(words) <= MAX_WORDS:
            return f"{len(words)} words"
        if len(text) > MAX_CHARS:
            return f"{len(text)} characters"
        lower = [w.lower() for w in words]
        if lang != "en":
            # distinct words: four times "a" must not outvote "that", "is", "by", "or"
            own = len({w for w in lower if w in rule.markers})
            english = len({w for w in lower if w in _ENGLISH and w not in rule.markers})
            if english >= 2 and english > own:
                return "untranslated English"
        if any(_mixed_case(w) and w not in _CAMEL_OK for w in words):
            return "mixed-case identifier"
        if lang == "it" and _APOSTROPHE_ACCENT_RE.search(text):
            return "apostrophe for an accent"
        if rule.markers and not (
            any(w in rule.markers for w in lower)
            or any(c in rule.marker_letters for c in text.lower())
        ):
            return f"nothing marks it as {lang}"
    if rule.cased:
        first = next(c for c in text if c.isalpha())
        if not first.isupper():
            return "starts in lower case (a fragment)"
    return None


def is_sentence(text: str, lang: str) -> bool:
    return reject_reason(text, lang) is None


def clean_sentences(candidates, lang: str, check: bool = True) -> list[str]:
    """Normalise, filter (unless `check` is off), de-duplicate; sorted so a rebuild of the
    cache gives the same file whatever order the files were read in."""
    seen: dict[str, str] = {}
    for text in candidates:
        text = normalize(text)
        if not text or (check and not is_sentence(text, lang)):
            continue
        seen.setdefault(dedup_key(text), text)
    return [seen[k] for k in sorted(seen)]
