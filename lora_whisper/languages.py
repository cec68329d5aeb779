"""Language codes <-> Whisper language tokens, and which metric a language is scored with.

The set of languages a backbone knows comes from its tokenizer (large-v3 adds `yue`), so
`LANGUAGES` is only the table of names; `Vocabulary.language_ids` is the authority.
"""
from __future__ import annotations

from lora_whisper.errors import UserError

LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}

# Scripts written without spaces between words: a word error rate is meaningless there, so
# these are scored by character error rate (as the paper does for zh and ja).
CER_LANGUAGES = frozenset({"zh", "ja", "yue", "th", "lo", "my", "km", "bo"})


class UnknownLanguageError(UserError, ValueError):
    """A language code that the backbone (or this run) does not know."""

    def __init__(self, code: str, valid: list[str] | tuple[str, ...], what: str = "language"):
        self.code = code
        self.valid = sorted(valid)
        super().__init__(
            f"unknown {what} {code!r}; valid codes: {', '.join(self.valid)}"
        )


def normalize_code(code: str) -> str:
    """Accept 'PL', ' pl ', '<|pl|>' or a full name ('polish')."""
    c = code.strip().lower()
    if c.startswith("<|") and c.endswith("|>"):
        c = c[2:-2]
    if c in LANGUAGES:
        return c
    by_name = {name: k for k, name in LANGUAGES.items()}
    return by_name.get(c, c)


def uses_cer(code: str) -> bool:
    return code in CER_LANGUAGES


def metric_name(code: str) -> str:
    return "CER" if uses_cer(code) else "WER"


def language_name(code: str) -> str:
    return LANGUAGES.get(code, code)
