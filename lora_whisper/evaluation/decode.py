"""Transcribe a list of utterances with a Transcriber and pair each hypothesis with its
reference: the shared step of `lora-whisper evaluate` and of dev scoring during training."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from lora_whisper.evaluation.metrics import UtteranceScore, score_utterance

LANGUAGE_MODES = ("given", "detect")


@dataclass
class Hypothesis:
    id: str
    language: str                 # the reference's language (from the data)
    decoded_as: str | None        # language the decoder was prompted with (given or detected)
    expert: str | None            # adapter the row was routed to (None = bare backbone)
    ref: str
    hyp: str
    score: UtteranceScore | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        s = d.pop("score")
        if s is not None:
            d.update(ref_norm=s["ref"], hyp_norm=s["hyp"], errors=s["errors"], length=s["length"],
                     error_rate=round(self.score.rate, 6))
        return d


def greedy_options(max_new_tokens: int | None = 128, beam_size: int = 1, fallback: bool = False):
    """Deterministic decoding for scoring: no temperature fallback unless asked (fallback
    samples, so two evaluations of one model would differ)."""
    from lora_whisper.inference.decoding import DecodeOptions

    if fallback:
        return DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens)
    return DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens, temperatures=(0.0,),
                         compression_ratio_threshold=None, logprob_threshold=None)


def decode_utterances(transcriber, utterances: Sequence, language: str = "given",
                      audio: dict | None = None, progress: bool = False) -> list[Hypothesis]:
    """One Hypothesis per utterance, in input order, scored against its reference.

    `language`: "given" prompts each utterance with its own language (and so routes it to
    that language's expert); "detect" lets Whisper's language ID choose both.
    `audio`: optional {utterance id: 16 kHz array} so repeated scoring skips decoding files.
    """
    if language not in LANGUAGE_MODES:
        raise ValueError(f"language mode must be one of {LANGUAGE_MODES}, got {language!r}")
    audio = audio or {}
    inputs = [audio.get(u.id, u.audio) for u in utterances]
    out: list[Hypothesis | None] = [None] * len(utterances)
    groups: dict[str | None, list[int]] = {}
    for i, u in enumerate(utterances):
        groups.setdefault(u.language if language == "given" else None, []).append(i)
    for lang, idx in groups.items():
        results = transcriber.transcribe([inputs[i] for i in idx], language=lang,
                                         names=[utterances[i].id for i in idx],
                                         progress=progress)
        for i, r in zip(idx, results):
            u = utterances[i]
            if r.error:
                raise RuntimeError(f"{u.id}: {r.error}")
            out[i] = Hypothesis(u.id, u.language, r.language, _expert(transcriber, r), u.text, r.text,
                                score_utterance(u.text, r.text, u.language))
    return out  # type: ignore[return-value]


def _expert(transcriber, r) -> str | None:
    """The adapter(s) a row went through: "pl", a mixture "pt+es+it", or None (bare backbone)."""
    return r.expert
