"""Offline speech synthesis engines behind one small interface.

An engine turns (text, language, voice variant, drawn parameters) into 16 kHz mono
float32. Parameters are drawn by the engine from a caller's RNG, so a build can plan
every utterance (and record its voice) before any audio exists.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from lora_whisper.errors import UserError

SAMPLE_RATE = 16000


class Engine(Protocol):
    name: str

    def languages(self) -> frozenset[str]: ...

    def check(self, lang: str) -> None:
        """Raise UserError when this machine cannot speak `lang` with this engine."""

    def draw_params(self, rng: np.random.Generator) -> dict: ...

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray: ...


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    ENGINES[engine.name] = engine
    return engine


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise UserError(f"unknown TTS engine {name!r}; available: {', '.join(sorted(ENGINES))}")
    return ENGINES[name]


def _resample(x: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


# ------------------------------------------------------------------ text front ends
_CJK_TO_ASCII = str.maketrans(
    {"，": ",", "、": ",", "；": ";", "：": ":", "。": ".", "！": "!", "？": "?",
     "（": "(", "）": ")", "「": "", "」": "", "『": "", "』": "", "《": "", "》": "",
     "“": "", "”": "", "‘": "", "’": "", "…": ".", "—": ",", "・": " "}
)


def pinyin(text: str) -> str:
    """Chinese characters -> tone-digit pinyin: espeak-ng's `cmn` voice misreads many
    characters, its `cmn-latn-pinyin` voice reads syllables like `zhong1` reliably."""
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(s.translate(_CJK_TO_ASCII).strip() for s in syllables if s.strip()).strip()


def _pyopenjtalk():
    try:
        import pyopenjtalk
    except ImportError as exc:
        raise UserError(
            "Japanese needs pyopenjtalk-plus (kanji -> kana for espeak-ng, and its own "
            "voice): pip install pyopenjtalk-plus"
        ) from exc
    return pyopenjtalk


def kana(text: str) -> str:
    """Japanese text -> katakana as pronounced: espeak-ng's `ja` voice reads only kana."""
    return _pyopenjtalk().g2p(text, kana=True)


# ------------------------------------------------------------------ espeak-ng
class EspeakNG:
    name = "espeak"
    # Whisper language -> espeak-ng voice; zh and ja go through a front end first
    VOICES = {
        "pl": "pl", "pt": "pt", "it": "it", "zh": "cmn-latn-pinyin", "da": "da", "el": "el",
        "cy": "cy", "ja": "ja", "en": "en-us", "de": "de", "es": "es", "ru": "ru", "nl": "nl",
    }
    FRONT_ENDS = {"zh": pinyin, "ja": kana}

    def languages(self) -> frozenset[str]:
        return frozenset(self.VOICES)

    def check(self, lang: str) -> None:
        if shutil.which("espeak-ng") is None:
            raise UserError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
        if lang not in self.VOICES:
            raise UserError(
                f"espeak engine has no voice for {lang!r}; it speaks: "
                f"{', '.join(sorted(self.VOICES))}"
            )
        if lang == "ja":
            _pyopenjtalk()

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {
            "speed": int(rng.integers(140, 191)),  # words per minute; default 175
            "pitch": int(rng.integers(30, 71)),  # 0..99; default 50
            "gap": int(rng.integers(0, 4)),  # extra pause between words, 10 ms units
        }

    def command(self, lang: str, variant: str, params: dict) -> list[str]:
        return [
            "espeak-ng", "-v", f"{self.VOICES[lang]}+{variant}",
            "-s", str(params["speed"]), "-p", str(params["pitch"]), "-g", str(params["gap"]),
            "-b", "1", "--stdout",
        ]

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        front = self.FRONT_ENDS.get(lang)
        spoken = front(text) if front else text
        # text on stdin: a sentence starting with "-" must not be read as an option
        proc = subprocess.run(
            self.command(lang, variant, params), input=(spoken + "\n").encode("utf-8"),
            capture_output=True,
        )
        if proc.returncode != 0 or len(proc.stdout) <= 44:
            raise RuntimeError(
                f"espeak-ng failed ({lang}, {variant}) on {spoken!r}: "
                f"{proc.stderr.decode(errors='replace').strip() or 'no audio'}"
            )
        audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        return _resample(audio, sr)


# ------------------------------------------------------------------ pyopenjtalk
class PyOpenJTalk:
    name = "pyopenjtalk"

    def languages(self) -> frozenset[str]:
        return frozenset({"ja"})

    def check(self, lang: str) -> None:
        if lang != "ja":
            raise UserError(f"pyopenjtalk speaks only Japanese, not {lang!r}")
        _pyopenjtalk()

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {
            "speed": round(float(rng.uniform(0.9, 1.15)), 3),
            "half_tone": round(float(rng.uniform(-2.0, 2.0)), 2),
        }

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        audio, sr = _pyopenjtalk().tts(text, speed=params["speed"], half_tone=params["half_tone"])
        return _resample(np.asarray(audio) / 32768.0, sr)  # int16-scaled float64


register(EspeakNG())
register(PyOpenJTalk())


def engines_for(lang: str, engines: list[str] | tuple[str, ...]) -> list[str]:
    """The requested engines that speak `lang` (pyopenjtalk asked for an all-language
    build simply does not apply to Polish)."""
    return [e for e in engines if lang in get_engine(e).languages()]
