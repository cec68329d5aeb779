"""Language ID restricted to a candidate set, by the bare backbone or by the run's experts.

Whisper's language ID is a softmax over its 99 language tokens after `<|startoftranscript|>`.
Restricted to candidates, the softmax is taken over the candidates' tokens only, which is the
distribution renormalised over the set: a language outside it can never come back.

Two scorers:
- `backbone`: the bare Whisper, one encoder pass per clip (what `--language auto` always did);
- `experts`: each candidate is scored with its own expert active (its routed encoder and
  decoder): candidate c gets the log-probability of its language token, among the candidates'
  tokens, under c's expert, and the scores are softmaxed across candidates. An expert trained
  on its language makes audio of that language look more like it, which is what a trained run
  knows better than the bare backbone. It costs one encoder pass per candidate: the clip's rows
  are repeated once per candidate in one batch, each routed to its candidate.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from lora_whisper.inference.decoding import language_probs
from lora_whisper.inference.routing_policy import LID_METHODS

if TYPE_CHECKING:
    from lora_whisper.inference.transcriber import Transcriber


def lid_token(t: "Transcriber", code: str) -> str:
    """The Whisper language token that scores a candidate (a run-only code: its prompt language)."""
    return t.prompt_language(code) or code


def detect(t: "Transcriber", clips: list[np.ndarray], candidates: Sequence[str] | None = None,
           method: str = "backbone") -> list[dict[str, float]]:
    """Per clip, {language: probability} over `candidates` (default: every backbone language),
    most likely first. Clips are batched shortest first, `t.batch_size` at a time."""
    if method not in LID_METHODS:
        raise ValueError(f"language ID method {method!r}: choose one of {', '.join(LID_METHODS)}")
    codes = list(candidates) if candidates else list(t.vocab.languages)
    experts = method == "experts" and t.bank is not None and len(codes) > 1
    # Each clip becomes len(codes) rows with the experts scorer: keep batches of similar size.
    per_batch = max(1, t.batch_size // len(codes)) if experts else t.batch_size
    result: list[dict[str, float]] = [{} for _ in clips]
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    for s in range(0, len(order), per_batch):
        idx = order[s:s + per_batch]
        for i, p in zip(idx, detect_features(t, t.features_of([clips[i] for i in idx]), codes, method)):
            result[i] = p
    return result


def detect_features(t: "Transcriber", features, codes: Sequence[str], method: str = "backbone"
                    ) -> list[dict[str, float]]:
    """`detect` on features already computed (a long file's windows: the decoder's own)."""
    feats, lens = features
    codes = list(codes)
    tokens = [lid_token(t, c) for c in codes]
    if method == "experts" and t.bank is not None and len(codes) > 1:
        probs = _expert_scores(t, feats, lens, codes, tokens)
    else:
        probs = language_probs(t.model, t.vocab, feats, lens, candidates=tokens)
    return [dict(sorted(zip(codes, row), key=lambda kv: -kv[1])) for row in probs.tolist()]


def _expert_scores(t: "Transcriber", feats: torch.Tensor, lens: torch.Tensor, codes: list[str],
                   tokens: list[str]) -> torch.Tensor:
    B, K = feats.shape[0], len(codes)
    rows = torch.arange(B).repeat_interleave(K)                # clip b's rows: b*K .. b*K+K-1
    routing = t.routing_for([c for _ in range(B) for c in codes])   # row b*K+k routed to codes[k]
    p = language_probs(t.model, t.vocab, feats[rows], None if lens is None else lens[rows],
                       routing=routing, candidates=tokens).view(B, K, K)
    own = p.diagonal(dim1=1, dim2=2).clamp_min(1e-12).log()    # [B, K]: codes[k] under expert k
    return torch.softmax(own, dim=-1)
