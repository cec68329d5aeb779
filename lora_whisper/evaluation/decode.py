"""Transcribe a list of utterances with a Transcriber and pair each hypothesis with its
reference: the shared step of `lora-whisper evaluate` and of dev scoring during training."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from lora_whisper.evaluation.metrics import UtteranceScore, score_utterance
from lora_whisper.inference.decoding import DecodeOptions

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
    if fallback:
        return DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens)
    return DecodeOptions(beam_size=beam_size, max_new_tokens=max_new_tokens, temperatures=(0.0,),
                         compression_ratio_threshold=None, logprob_threshold=None)


def decode_utterances(transcriber, utterances: Sequence, language: str = "given",
                      audio: dict | None = None, progress: bool = False,
                      skipped: list | None = None) -> list[Hypothesis]:
    """One Hypothesis per utterance, in input order, scored against its reference.

    `language`: "given" prompts each utterance with its own language (and so routes it to
    that language's expert); "detect" lets Whisper's language ID choose both.
    `audio`: optional {utterance id: 16 kHz array} so repeated scoring skips decoding files.
    `skipped`: a list to collect (utterance, problem) for rows that could not be decoded,
    which are then left out; without it the first such row raises.
    """
    if language not in LANGUAGE_MODES:
        raise ValueError(f"language mode must be one of {LANGUAGE_MODES}, got {language!r}")
    audio = audio or {}
    # One call: the Transcriber batches all languages together, each row prompted with (and
    # routed by) its own language, or detected when `language` is "detect".
    results = transcriber.transcribe([audio.get(u.id, u.audio) for u in utterances],
                                     language=[u.language if language == "given" else None for u in utterances],
                                     names=[u.id for u in utterances], progress=progress)
    out: list[Hypothesis] = []
    for u, r in zip(utterances, results):
        if r.error:
            if skipped is None:
                raise RuntimeError(f"{u.id}: {r.error}")
            skipped.append((u, r.error))
            continue
        out.append(Hypothesis(u.id, u.language, r.language, r.expert, u.text, r.text,
                              score_utterance(u.text, r.text, u.language)))
    return out

