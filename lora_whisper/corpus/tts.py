"""Offline speech synthesis engines behind one small interface.

An engine turns (text, language, voice variant, drawn parameters) into 16 kHz mono
float32. Parameters are drawn by the engine from a caller's RNG, so a build can plan
every utterance (and record its voice) before any audio exists.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr
from pypinyin import Style, lazy_pinyin

from lora_whisper.audio import SAMPLE_RATE
from lora_whisper.errors import UserError


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


def resample(x: np.ndarray, sr: int) -> np.ndarray:
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
    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(s.translate(_CJK_TO_ASCII).strip() for s in syllables if s.strip()).strip()


def _pyopenjtalk():
    # Imported on first use: a compiled extension that may be missing (the engine reports
    # itself unavailable), and ~0.4 s that builds without Japanese need not pay.
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
        return resample(audio, sr)


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
        return resample(np.asarray(audio) / 32768.0, sr)  # int16-scaled float64


# ------------------------------------------------------------------ more engines (Debian)
# Each has its own voices, named per language. They are what the benchmark's test sets are
# spoken with where a language has one (an engine no training clip used): apt packages, from
# Debian contrib/non-free except festival, missing ones are simply not offered.

def _run_to_wav(cmd: list[str], what: str, stdin: bytes | None = None) -> np.ndarray:
    """Run a synthesiser whose last argument is the WAV file to write; returns 16 kHz float32."""
    with tempfile.TemporaryDirectory(prefix="lw-tts-") as d:
        path = os.path.join(d, "out.wav")
        proc = subprocess.run([*cmd, path], input=stdin, capture_output=True)
        if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) <= 44:
            raise RuntimeError(f"{what} failed: {proc.stderr.decode(errors='replace').strip()[-300:] or 'no audio'}")
        audio, sr = sf.read(path, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return resample(audio, sr)


class _VoiceTable:
    """Engines whose voices are a per-language table filtered by what is installed: they differ
    only in `voices()` and the install hint of their one-line error."""
    VOICES: dict[str, tuple[str, ...]] = {}
    MISSING = "no voice for {lang!r} is installed"

    def voices(self, lang: str) -> tuple[str, ...]:
        raise NotImplementedError

    def languages(self) -> frozenset[str]:
        return frozenset(k for k in self.VOICES if self.voices(k))

    def available(self) -> bool:
        return bool(self.languages())

    def check(self, lang: str) -> None:
        if not self.voices(lang):
            raise UserError(self.MISSING.format(lang=lang))


class Mbrola(_VoiceTable):
    """MBROLA diphone voices driven by espeak-ng (`-v mb-pl1`): espeak-ng's text front end,
    a different voice source (concatenated recorded diphones of one real speaker)."""
    name = "mbrola"
    VOICES = {"pl": ("pl1",), "it": ("it3", "it4"), "pt": ("br1", "br3", "pt1"), "el": ("gr1", "gr2"),
              "ja": ("jp2", "jp3"), "es": ("es2", "es3"), "de": ("de4", "de6"), "nl": ("nl2", "nl3")}
    DIR = "/usr/share/mbrola"

    def voices(self, lang: str) -> tuple[str, ...]:
        if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
            return ()
        return tuple(v for v in self.VOICES.get(lang, ()) if os.path.exists(os.path.join(self.DIR, v)))

    def check(self, lang: str) -> None:
        if not self.voices(lang):
            wanted = " ".join("mbrola-" + v for v in self.VOICES.get(lang, ()))
            raise UserError(f"no MBROLA voice for {lang!r} is installed (Debian contrib: apt-get install mbrola {wanted})")
        if lang == "ja":
            _pyopenjtalk()

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {"speed": int(rng.integers(140, 186)), "pitch": int(rng.integers(35, 66))}

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        front = EspeakNG.FRONT_ENDS.get(lang)
        spoken = front(text) if front else text
        cmd = ["espeak-ng", "-v", f"mb-{variant}", "-s", str(params["speed"]), "-p", str(params["pitch"]), "-w"]
        return self._synth(cmd, spoken, variant)

    @staticmethod
    def _synth(cmd: list[str], spoken: str, variant: str) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="lw-tts-") as d:
            path = os.path.join(d, "out.wav")
            proc = subprocess.run([*cmd, path], input=(spoken + "\n").encode("utf-8"), capture_output=True)
            if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) <= 44:
                raise RuntimeError(f"mbrola {variant} failed on {spoken!r}: "
                                   f"{proc.stderr.decode(errors='replace').strip()[-300:] or 'no audio'}")
            audio, sr = sf.read(path, dtype="float32")
        return resample(audio if audio.ndim == 1 else audio.mean(axis=1), sr)


class RHVoice(_VoiceTable):
    """RHVoice (statistical parametric voices with their own text front end)."""
    name = "rhvoice"
    VOICES = {"pl": ("magda", "natan"), "pt": ("Leticia-F123",), "ru": ("aleksandr", "elena"),
              "en": ("slt", "bdl")}
    DIRS = ("/usr/share/RHVoice/voices",)

    def voices(self, lang: str) -> tuple[str, ...]:
        if shutil.which("RHVoice-test") is None:
            return ()
        return tuple(v for v in self.VOICES.get(lang, ())
                     if any(os.path.isdir(os.path.join(d, v)) for d in self.DIRS))

    MISSING = "no RHVoice voice for {lang!r} is installed (Debian non-free: rhvoice + its voice)"

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {"rate": int(rng.integers(85, 121)), "pitch": int(rng.integers(85, 116))}

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        return _run_to_wav(["RHVoice-test", "-p", variant, "-r", str(params["rate"]), "-t", str(params["pitch"]),
                            "-o"], f"RHVoice {variant}", (text + "\n").encode("utf-8"))


class Pico(_VoiceTable):
    """SVOX Pico (one voice a language; no speed or pitch controls)."""
    name = "pico"
    VOICES = {"it": ("it-IT",), "de": ("de-DE",), "es": ("es-ES",), "en": ("en-US", "en-GB"), "fr": ("fr-FR",)}

    def voices(self, lang: str) -> tuple[str, ...]:
        return self.VOICES.get(lang, ()) if shutil.which("pico2wave") else ()

    MISSING = "pico has no voice for {lang!r} here (Debian non-free: libttspico-utils)"

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {}

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="lw-tts-") as d:
            path = os.path.join(d, "out.wav")  # pico2wave insists on a .wav name
            proc = subprocess.run(["pico2wave", "-l", variant, "-w", path, "--", text], capture_output=True)
            if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) <= 44:
                raise RuntimeError(f"pico {variant} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
            audio, sr = sf.read(path, dtype="float32")
        return resample(audio if audio.ndim == 1 else audio.mean(axis=1), sr)


class Festival(_VoiceTable):
    """Festival diphone voices (Italian: festvox-italp16k, festvox-itapc16k; Debian main)."""
    name = "festival"
    VOICES = {"it": ("lp_diphone", "pc_diphone")}
    DIR = "/usr/share/festival/voices"

    def voices(self, lang: str) -> tuple[str, ...]:
        if shutil.which("text2wave") is None:
            return ()
        out = []
        for v in self.VOICES.get(lang, ()):
            if any(os.path.isdir(os.path.join(self.DIR, group, v)) for group in
                   (os.listdir(self.DIR) if os.path.isdir(self.DIR) else ())):
                out.append(v)
        return tuple(out)

    MISSING = "festival has no voice for {lang!r} here (Debian: festival festvox-italp16k festvox-itapc16k)"

    def draw_params(self, rng: np.random.Generator) -> dict:
        return {"stretch": round(float(rng.uniform(0.9, 1.15)), 3)}

    def synthesize(self, text: str, lang: str, variant: str, params: dict) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="lw-tts-") as d:
            txt, path = os.path.join(d, "in.txt"), os.path.join(d, "out.wav")
            # the Italian voices read ISO-8859-1
            with open(txt, "wb") as fh:
                fh.write(text.encode("latin-1", errors="replace") + b"\n")
            ev = f"(begin (voice_{variant}) (Parameter.set 'Duration_Stretch {params['stretch']}))"
            proc = subprocess.run(["text2wave", "-eval", ev, txt, "-o", path], capture_output=True)
            if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) <= 44:
                raise RuntimeError(f"festival {variant} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
            audio, sr = sf.read(path, dtype="float32")
        return resample(audio if audio.ndim == 1 else audio.mean(axis=1), sr)


EspeakNG.available = staticmethod(lambda: shutil.which("espeak-ng") is not None)  # type: ignore[attr-defined]


def _has_pyopenjtalk() -> bool:
    try:
        import pyopenjtalk  # noqa: F401  (may be missing; see _pyopenjtalk)
    except ImportError:
        return False
    return True


PyOpenJTalk.available = staticmethod(_has_pyopenjtalk)  # type: ignore[attr-defined]

register(EspeakNG())
register(PyOpenJTalk())
register(Mbrola())
register(RHVoice())
register(Pico())
register(Festival())

# Which engine a test set is spoken with when one is held out of training: the most unlike
# espeak-ng first (own text front end and voice source), MBROLA (espeak-ng's front end) last.
HELD_OUT_PREFERENCE = ("rhvoice", "festival", "pico", "mbrola")


def available_engines(names=None) -> list[str]:
    """The engines (of `names`, default all) this machine can run."""
    return [n for n in (names or ENGINES) if n in ENGINES and ENGINES[n].available()]


def held_out_engine_for(lang: str, engines) -> str | None:
    """The engine a language's test set is spoken with, None when it has no second engine."""
    usable = engines_for(lang, engines)
    if len(usable) < 2:
        return None
    return next((e for e in HELD_OUT_PREFERENCE if e in usable), None)


def engines_for(lang: str, engines: list[str] | tuple[str, ...]) -> list[str]:
    """The requested engines that speak `lang` (pyopenjtalk asked for an all-language
    build simply does not apply to Polish)."""
    return [e for e in engines if lang in get_engine(e).languages()]
