"""Decoding options, one frozen dataclass passed per call (as faster-whisper takes them), apart
from the decoder so the CLI builds `transcribe`'s decoding flags from its fields without
importing torch."""
from __future__ import annotations

from dataclasses import dataclass

from lora_whisper.fields import setting


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = setting(1, "beam width (1: greedy, with temperature fallback)", minimum=1)
    max_new_tokens: int | None = setting(None, "tokens per window at most (default: the model's context, "
                                         "224 tokens)", minimum=1)
    temperatures: tuple[float, ...] = setting((0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                                              "temperature fallback: a window whose text loops or is unlikely "
                                              "is decoded again at the next one (comma-separated)")
    compression_ratio_threshold: float | None = setting(2.4, "text that compresses more than this is a "
                                                        "repetition loop (Whisper's rule)")
    logprob_threshold: float | None = setting(-1.0, "mean token log-probability under which a window is "
                                              "decoded again (or, with the no-speech rule, is silence)")
    suppress_blank: bool = setting(True, cli=False)
    seed: int = setting(0, "seed of sampling at temperatures above 0 (one generator per row)")
    # Timestamp mode (long-form seeking): the prompt leaves out <|notimestamps|> and the
    # model writes <|t|> text <|t|> segments under Whisper's timestamp rules.
    timestamps: bool = setting(False, cli=False)
    max_initial_timestamp: float = setting(1.0, cli=False)
    no_speech_threshold: float | None = setting(0.6, "P(<|nospeech|>) above which an unlikely window is "
                                                "taken for silence")
    # A row stops after 8 + this many tokens per second of its audio: no language is spoken
    # faster (about 16 tokens/s for fast Japanese), while a repetition loop on a fraction of a
    # second (a word cut at a file's end) would otherwise run to the 224-token context.
    max_tokens_per_second: float | None = setting(20.0, "a row stops after 8 + this many tokens per second "
                                                  "of its audio (a loop's cap)")
    # Short clips (real length, no timestamps) whose text loops are decoded again padded to
    # 30 s, then with timestamps too (Transcriber._unloop, inference/loops.py).
    loop_guard: bool = setting(True, "decode a short clip whose text loops again, padded to 30 s, then with "
                               "timestamps")
