"""The Python API: load a backbone (and optionally a run of adapters), detect, transcribe.

Clips are sorted by length and decoded in batches at the longest clip's real length, so a batch
of short clips never pays for 30 s of padding. Audio longer than 30 s is cut into 30 s windows
that are decoded as ordinary rows and joined back with their time offsets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lora_whisper.backbone.load import Backbone, load_backbone
from lora_whisper.data.features import N_SAMPLES_30S, SAMPLE_RATE, log_mel
from lora_whisper.inference.decoding import DecodeOptions, decode_batch, language_probs


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcription:
    source: str
    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    expert: str | None = None          # adapter used; None = bare backbone
    duration: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)




WINDOW_SECONDS = 29.0   # + the 1 s silence tail that log_mel adds = Whisper's 30 s window
SEARCH_SECONDS = 5.0    # a cut is placed at the quietest 100 ms in the window's last 5 s


def _windows(audio: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Long audio -> (offset s, window) pieces of at most 29 s, cut where it is quietest
    near each boundary so that a word is rarely split between two windows."""
    size = int(WINDOW_SECONDS * SAMPLE_RATE)
    if len(audio) <= size:
        return [(0.0, audio)]
    hop = SAMPLE_RATE // 10
    out, start = [], 0
    while start < len(audio):
        end = start + size
        if end < len(audio):
            lo = end - int(SEARCH_SECONDS * SAMPLE_RATE)
            frames = audio[lo:end][: (end - lo) // hop * hop].reshape(-1, hop)
            end = lo + int(np.argmin((frames ** 2).mean(axis=1))) * hop + hop // 2
        piece = audio[start:end]
        if len(piece) >= SAMPLE_RATE // 10:
            out.append((start / SAMPLE_RATE, piece))
        start = end
    return out


def _shared_expert(run_info) -> str | None:
    """The expert that serves every language (a shared-lora run), if any."""
    if not hasattr(run_info, "provenance"):
        return None
    return next((n for n in run_info.experts if run_info.provenance(n).get("route_all")), None)


class Transcriber:
    def __init__(self, backbone: Backbone, bank=None, run_info=None, pad_30s: bool = False,
                 batch_size: int = 8, options: DecodeOptions = DecodeOptions(), route_all: str | None = None):
        self.backbone = backbone
        self.route_all = route_all if route_all is not None else _shared_expert(run_info)
        self.bank = bank
        self.run_info = run_info
        self.pad_30s = pad_30s
        self.batch_size = batch_size
        self.options = options

    @property
    def model(self):
        return self.backbone.model

    @property
    def vocab(self):
        return self.backbone.vocab

    # -- routing ---------------------------------------------------------------------------------
    def mixture_for(self, language: str | None) -> dict[str, float] | None:
        """{expert: weight} a row of this language is routed with; None = bare backbone."""
        if self.bank is None or language is None:
            return None
        shared = self.route_all
        if shared:
            return {shared: 1.0}
        if language not in self.bank.languages:
            return None
        mix = self.run_info.mixture(language) if self.run_info is not None else None
        return mix or {language: 1.0}

    def expert_for(self, language: str | None) -> str | None:
        mix = self.mixture_for(language)
        return None if mix is None else "+".join(mix)

    def _routing(self, languages: Sequence[str | None]):
        if self.bank is None:
            return None
        specs: list = []
        for lang in languages:
            mix = self.mixture_for(lang)
            single = mix is not None and len(mix) == 1 and next(iter(mix.values())) == 1.0
            # A plain name keeps the bank on its no-gather single-expert path.
            specs.append(next(iter(mix)) if single else mix)
        return self.bank.routing_for(specs)

    # -- features ----------------------------------------------------------------------------------
    def _features(self, clips: list[np.ndarray]):
        feats, lens = log_mel(clips, self.backbone.n_mels, pad_30s=self.pad_30s)
        param = next(self.model.parameters())
        return feats.to(param.device, param.dtype), lens.to(param.device)

    def prompt_language(self, language: str | None) -> str | None:
        """The Whisper language token a language's prompts use: itself, or for a language
        Whisper has no token for, the one recorded when it was added (`--prompt-language`)."""
        info = self.run_info
        if language and info is not None and language in getattr(info, "experts", ()):
            return info.provenance(language).get("prompt_language") or language
        return language

    def _check_language(self, language: str | None) -> str | None:
        if language in (None, "", "auto"):
            return None
        if self.bank is not None and language in self.bank.languages and self.prompt_language(language) != language:
            return language  # a run-only code: prompted with its recorded Whisper token
        return self.vocab.check_language(language)

    @staticmethod
    def _load(x) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x.astype(np.float32, copy=False)
        if isinstance(x, torch.Tensor):
            return x.float().cpu().numpy()
        from lora_whisper.audio import load_audio

        return load_audio(x)

    # -- language ID -------------------------------------------------------------------------------
    def detect_language(self, inputs, candidates: list[str] | None = None) -> list[dict[str, float]]:
        """Full probability distribution over languages per input (bare backbone, first 30 s)."""
        single = not isinstance(inputs, (list, tuple))
        clips = [self._load(x)[:N_SAMPLES_30S] for x in ([inputs] if single else inputs)]
        out = self._detect(clips, candidates)
        return out[0] if single else out

    def _detect(self, clips: list[np.ndarray], candidates=None) -> list[dict[str, float]]:
        codes = candidates or self.vocab.languages
        result: list[dict[str, float]] = [{} for _ in clips]
        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            feats, lens = self._features([clips[i] for i in idx])
            probs = language_probs(self.model, self.vocab, feats, lens, candidates=codes)
            for row, i in enumerate(idx):
                p = probs[row].tolist()
                result[i] = dict(sorted(zip(codes, p), key=lambda kv: -kv[1]))
        return result

    # -- transcription -----------------------------------------------------------------------------
    def transcribe(self, inputs, language: "str | None | Sequence[str | None]" = None, beam_size: int | None = None,
                   max_new_tokens: int | None = None, progress: bool = False,
                   names: Sequence[str] | None = None) -> "Transcription | list[Transcription]":
        """Transcribe one input (path or 16 kHz array) or a list of them.

        `language`: a code, None/'auto' to detect per input, or a list with one of those per
        input. For a list of inputs, files that cannot be
        decoded come back with `.error` set and the rest are still transcribed.
        """
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        # One language for all inputs, or one per input (a mixed-language batch: each row is
        # prompted with, and routed to, its own language).
        per_input = list(language) if isinstance(language, (list, tuple)) else [language] * len(items)
        if len(per_input) != len(items):
            raise ValueError(f"{len(per_input)} languages for {len(items)} inputs")
        forced_of = [self._check_language(x) for x in per_input]
        opts = self.options
        if beam_size is not None or max_new_tokens is not None:
            from dataclasses import replace

            opts = replace(opts, beam_size=beam_size or opts.beam_size,
                           max_new_tokens=max_new_tokens or opts.max_new_tokens)
        outs = [Transcription(source=str(names[i]) if names else
                              (str(x) if not isinstance(x, (np.ndarray, torch.Tensor)) else f"<array {i}>"))
                for i, x in enumerate(items)]
        audios: dict[int, np.ndarray] = {}
        for i, x in enumerate(items):
            try:
                audios[i] = self._load(x)
                outs[i].duration = len(audios[i]) / SAMPLE_RATE
            except Exception as exc:  # noqa: BLE001  (reported per file; others continue)
                if single:
                    raise
                outs[i].error = str(exc)
        # language per input (detected on its first window)
        langs: dict[int, str] = {i: forced_of[i] for i in audios if forced_of[i]}
        keys = [i for i in audios if i not in langs]
        if keys:
            probs = self._detect([audios[i][:N_SAMPLES_30S] for i in keys])
            for i, p in zip(keys, probs):
                code, prob = next(iter(p.items()))
                langs[i] = code
                outs[i].language_probability = prob
        rows: list[tuple[int, float, np.ndarray]] = []
        for i, a in audios.items():
            outs[i].language = langs[i]
            outs[i].expert = self.expert_for(langs[i])
            rows.extend((i, off, w) for off, w in _windows(a))
        rows.sort(key=lambda r: len(r[2]))
        bar = None
        if progress and len(rows) > 1:
            from tqdm import tqdm

            bar = tqdm(total=len(rows), unit="clip", desc="transcribing")
        texts: dict[int, list[Segment]] = {i: [] for i in audios}
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s:s + self.batch_size]
            feats, lens = self._features([r[2] for r in chunk])
            row_langs = [langs[r[0]] for r in chunk]
            prompts = [self.vocab.sot_sequence(self.prompt_language(lang)) for lang in row_langs]
            routing = self._routing(row_langs)
            results = decode_batch(self.model, self.vocab, feats, lens, prompts, routing=routing, options=opts)
            for (i, off, w), res in zip(chunk, results):
                texts[i].append(Segment(round(off, 3), round(off + len(w) / SAMPLE_RATE, 3), res.text))
            if bar:
                bar.update(len(chunk))
        if bar:
            bar.close()
        for i, segs in texts.items():
            segs.sort(key=lambda g: g.start)
            outs[i].segments = [g for g in segs if g.text]
            outs[i].text = " ".join(g.text for g in segs if g.text).strip()
        return outs[0] if single else outs


def load(source: str | None = None, run: str | Path | None = None, **kwargs) -> Transcriber:
    """`lora_whisper.load()` -> the embedded whisper-base; `load(run="RUN")` -> a trained run
    (adapters, or a fully fine-tuned model); `load("path/to/hf-whisper")` -> any local Whisper.
    With a run, `source` overrides where its backbone is found."""
    if run is None and source is not None and (Path(str(source)) / RUN_FILE).exists():
        run, source = source, None
    if run is None:
        return Transcriber(load_backbone(source), **kwargs)
    import json

    from lora_whisper.errors import UserError

    run = Path(run)
    try:
        meta = json.loads((run / RUN_FILE).read_text())
    except FileNotFoundError:
        raise UserError(f"{run}: not a run directory (no {RUN_FILE})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{run / RUN_FILE}: not valid JSON ({exc})") from None
    if meta.get("format") == FULL_MODEL_FORMAT:
        return Transcriber(load_backbone(str(run / meta.get("model", "model"))), **kwargs)
    from lora_whisper.adapters.files import load_run

    backbone = load_backbone(source or meta["backbone"]["source"])
    bank, info = load_run(run, backbone)
    return Transcriber(backbone, bank=bank, run_info=info, **kwargs)


RUN_FILE = "lora_whisper.json"
FULL_MODEL_FORMAT = "lora-whisper-full-model"
