"""Whisper's special tokens and text <-> ids, built from local files only (no hub).

Wraps a `tokenizers.Tokenizer` directly: the transformers tokenizer classes want a hub-style
directory with several files, while the embedded backbone ships just tokenizer.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from lora_whisper.languages import LANGUAGES, UnknownLanguageError, normalize_code


@dataclass
class Vocabulary:
    tokenizer: Tokenizer
    language_ids: dict[str, int]  # code -> token id, in the backbone's order
    eot: int
    sot: int
    transcribe: int
    translate: int
    no_timestamps: int
    no_speech: int | None
    suppress: list[int] = field(default_factory=list)
    suppress_begin: list[int] = field(default_factory=list)

    @classmethod
    def from_file(cls, tokenizer_json: str | Path, generation: dict | None = None) -> "Vocabulary":
        tok = Tokenizer.from_file(str(tokenizer_json))
        ids = tok.get_vocab()

        def need(token: str) -> int:
            if token not in ids:
                raise ValueError(f"{tokenizer_json}: not a Whisper tokenizer (no {token})")
            return ids[token]

        langs = {code: ids[f"<|{code}|>"] for code in LANGUAGES if f"<|{code}|>" in ids}
        langs = dict(sorted(langs.items(), key=lambda kv: kv[1]))
        gen = generation or {}
        return cls(
            tokenizer=tok,
            language_ids=langs,
            eot=need("<|endoftext|>"),
            sot=need("<|startoftranscript|>"),
            transcribe=need("<|transcribe|>"),
            translate=need("<|translate|>"),
            no_timestamps=need("<|notimestamps|>"),
            no_speech=ids.get("<|nospeech|>", ids.get("<|nocaptions|>")),
            suppress=list(gen.get("suppress", [])),
            suppress_begin=list(gen.get("suppress_begin", [ids.get("Ġ", 220), need("<|endoftext|>")])),
        )

    @property
    def timestamp_begin(self) -> int:
        """<|0.00|>: Whisper's timestamp ids follow <|notimestamps|>, one per 20 ms. They are
        in the model's vocabulary even where tokenizer.json (the embedded one) does not name them."""
        return self.no_timestamps + 1

    @property
    def languages(self) -> list[str]:
        return list(self.language_ids)

    def check_language(self, code: str) -> str:
        c = normalize_code(code)
        if c not in self.language_ids:
            raise UnknownLanguageError(code, list(self.language_ids))
        return c

    def sot_sequence(self, language: str | None, task: str = "transcribe",
                     timestamps: bool = False) -> list[int]:
        seq = [self.sot]
        if language is not None:
            seq.append(self.language_ids[self.check_language(language)])
        seq.append(self.translate if task == "translate" else self.transcribe)
        if not timestamps:
            seq.append(self.no_timestamps)
        return seq

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.eot], skip_special_tokens=True).strip()


def generation_from_ct2_config(path: str | Path) -> dict:
    cfg = json.loads(Path(path).read_text())

    def as_list(x):
        return json.loads(x) if isinstance(x, str) else list(x)

    return {"suppress": as_list(cfg.get("suppress_ids", [])),
            "suppress_begin": as_list(cfg.get("suppress_ids_begin", []))}


def generation_from_hf_dir(path: str | Path) -> dict:
    p = Path(path) / "generation_config.json"
    cfg = json.loads(p.read_text()) if p.exists() else {}
    if not cfg:
        c = Path(path) / "config.json"
        cfg = json.loads(c.read_text()) if c.exists() else {}
    return {"suppress": list(cfg.get("suppress_tokens") or []),
            "suppress_begin": list(cfg.get("begin_suppress_tokens") or [])}
