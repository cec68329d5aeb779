"""Batched Whisper decoding: greedy, beam search, temperature fallback, language ID.

Works on our real-length forward (`backbone.forward`): a batch of clips of mixed lengths is
encoded once at the longest clip's length with padded frames masked. Per-row LoRA routing
(`Router`) follows the rows through beam expansion and the dropping of finished rows, and is
given to each forward call (encode, the cross-attention cache, each token step) in its own
`routed` block: a decode run in between (`preemptible`) cannot leave its routing behind.
"""
from __future__ import annotations

import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lora_whisper.adapters.routing import Routing, routed
from lora_whisper.backbone.forward import KVCache, decoder_step, encode, init_cache
from lora_whisper.backbone.vocab import Vocabulary
from lora_whisper.inference.options import DecodeOptions


@dataclass
class DecodeResult:
    tokens: list[int]
    text: str
    avg_logprob: float
    compression_ratio: float
    temperature: float
    language: str | None = None
    language_probs: dict[str, float] = field(default_factory=dict)
    no_speech_prob: float | None = None
    token_logprobs: list[float] | None = None   # per token of `tokens` (greedy and sampling)


TIME_PRECISION = 0.02  # seconds per timestamp token (one encoder position)


def is_silence(res: "DecodeResult", options: "DecodeOptions") -> bool:
    """Whisper's no-speech rule: <|nospeech|> likely and the decoded text unlikely."""
    return (options.no_speech_threshold is not None and res.no_speech_prob is not None
            and res.no_speech_prob > options.no_speech_threshold
            and options.logprob_threshold is not None and res.avg_logprob < options.logprob_threshold)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


_PREEMPT = threading.local()


@contextmanager
def preemptible(hook):
    """Decoding in this block calls `hook()` between encoder layers and token steps; the hook
    may run other decodes on the same model (a server serving short requests in the middle of
    a long window). Its return value is not used: each forward call here is given its
    routing anew, so whatever the hook ran leaves nothing to restore."""
    before = getattr(_PREEMPT, "hook", None)
    _PREEMPT.hook = hook
    try:
        yield
    finally:
        _PREEMPT.hook = before


def _yield_point() -> None:
    hook = getattr(_PREEMPT, "hook", None)
    if hook is None:
        return
    _PREEMPT.hook = None   # decodes run by the hook are not themselves preempted
    try:
        hook()
    finally:
        _PREEMPT.hook = hook


class Router:
    """The LoRA routing of the decoder's current rows (None: the bare backbone), kept aligned
    with them as they are expanded into beams and dropped when finished. Every forward call
    runs inside `scope()`."""

    def __init__(self, routing: Routing | None):
        self.routing = routing
        self.current = routing

    def scope(self):
        return routed(self.current)

    def reset(self):
        self.current = self.routing

    def expand(self, n: int):
        if self.current is not None and n > 1:
            self.current = self.current.repeat_interleave(n)

    def select(self, index: torch.Tensor):
        if self.current is not None:
            self.current = self.current.index_select(index)


def _token_mask(vocab: Vocabulary, vocab_size: int, device,
                timestamps: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive masks: always-suppressed ids, and those suppressed at the first position too."""
    always = torch.zeros(vocab_size, device=device)
    always[vocab.eot + 1:] = float("-inf")  # special tokens: never text
    if timestamps:
        always[vocab.timestamp_begin:] = 0.0
    for t in vocab.suppress:
        if 0 <= t < vocab_size:
            always[t] = float("-inf")
    first = always.clone()
    for t in vocab.suppress_begin:
        if 0 <= t < vocab_size:
            first[t] = float("-inf")
    return always, first


class _TimestampRules:
    """Whisper's ApplyTimestampRules (openai/whisper decoding.py), per row: timestamps come in
    pairs and never go back, the first token is a timestamp no later than
    `max_initial_timestamp`, none lies past the row's audio, and a timestamp is taken whenever
    all timestamps together are likelier than the best text token."""

    def __init__(self, vocab: Vocabulary, options: "DecodeOptions", max_index: list[int]):
        self.eot, self.tb = vocab.eot, vocab.timestamp_begin
        self.max_initial = int(round(options.max_initial_timestamp / TIME_PRECISION))
        self.max_index = max_index  # per input row: the last timestamp its audio allows

    def __call__(self, logits: torch.Tensor, seqs: list[list[int]], rows: list[int], first: bool) -> torch.Tensor:
        tb, ninf = self.tb, float("-inf")
        for k, (seq, row) in enumerate(zip(seqs, rows)):
            last_ts = len(seq) >= 1 and seq[-1] >= tb
            penultimate_ts = len(seq) < 2 or seq[-2] >= tb
            if last_ts:
                if penultimate_ts:
                    logits[k, tb:] = ninf          # a pair is closed: text must follow
                else:
                    logits[k, :self.eot] = ninf    # a segment's end: no more text before it
            stamps = [t for t in seq if t >= tb]
            if stamps:
                floor = stamps[-1] if last_ts and not penultimate_ts else stamps[-1] + 1
                logits[k, tb:floor] = ninf
            logits[k, tb + self.max_index[row] + 1:] = ninf
        if first:
            logits[:, :tb] = ninf
            logits[:, tb + self.max_initial + 1:] = ninf
        lp = F.log_softmax(logits, dim=-1)
        force = lp[:, tb:].logsumexp(-1) > lp[:, :tb].max(-1).values
        if bool(force.any()):
            logits[force, :tb] = ninf
        return logits


def _stop_spent(logits: torch.Tensor, rows: list[int], budget: list[int] | None, step: int, eot: int) -> None:
    """Rows whose token budget is spent may only end (in place)."""
    if budget is None:
        return
    spent = [k for k, row in enumerate(rows) if step >= budget[row]]
    if spent:
        logits[spent] = float("-inf")
        logits[spent, eot] = 0.0


def _no_speech(prompt_logits: torch.Tensor, vocab: Vocabulary) -> list[float | None]:
    """P(<|nospeech|>) right after <|startoftranscript|>, as Whisper reads it."""
    if vocab.no_speech is None:
        return [None] * prompt_logits.shape[0]
    return F.softmax(prompt_logits[:, 0].float(), dim=-1)[:, vocab.no_speech].tolist()


def _greedy_or_sample(model, cache: KVCache, prompt: torch.Tensor, vocab: Vocabulary, max_new: int,
                      temperature: float, router: Router, generator, rules: "_TimestampRules | None" = None,
                      budget: list[int] | None = None, token_lps: list[list[float]] | None = None
                      ) -> tuple[list[list[int]], list[float], list[float | None]]:
    B = prompt.shape[0]
    always, first = _token_mask(vocab, model.config.vocab_size, prompt.device, rules is not None)
    tokens: list[list[int]] = [[] for _ in range(B)]
    sum_lp = [0.0] * B
    alive = torch.arange(B)
    with router.scope():
        prompt_logits = decoder_step(model, prompt, cache)
    no_speech = _no_speech(prompt_logits, vocab)
    logits = prompt_logits[:, -1]
    for step in range(max_new):
        logits = logits.float() + (first if step == 0 else always)
        rows = alive.tolist()
        if rules is not None:
            logits = rules(logits, [tokens[r] for r in rows], rows, step == 0)
        _stop_spent(logits, rows, budget, step, vocab.eot)
        if temperature > 0:
            probs = F.softmax(logits / temperature, dim=-1)
            # One generator per row: a row's samples do not depend on which rows share its batch.
            nxt = torch.cat([torch.multinomial(probs[j], 1, generator=generator[r]) for j, r in enumerate(rows)])
        else:
            nxt = logits.argmax(-1)
        lp = F.log_softmax(logits, dim=-1).gather(1, nxt[:, None]).squeeze(1)
        done = nxt == vocab.eot
        for j, row in enumerate(alive.tolist()):
            sum_lp[row] += float(lp[j])
            if not done[j]:
                tokens[row].append(int(nxt[j]))
                if token_lps is not None:   # word probabilities (words.py) without another pass
                    token_lps[row].append(float(lp[j]))
        if bool(done.all()) or step == max_new - 1:
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            alive = alive[keep]
            nxt = nxt[keep]
            cache = cache.keep_rows(keep)
            router.select(keep)
        _yield_point()
        with router.scope():
            logits = decoder_step(model, nxt[:, None], cache)[:, -1]
    return tokens, [s / (len(t) + 1) for s, t in zip(sum_lp, tokens)], no_speech


def _beam_search(model, cache: KVCache, prompt: torch.Tensor, vocab: Vocabulary, max_new: int,
                 beam: int, router: Router, rules: "_TimestampRules | None" = None,
                 budget: list[int] | None = None) -> tuple[list[list[int]], list[float], list[float | None]]:
    B = prompt.shape[0]
    V = model.config.vocab_size
    always, first = _token_mask(vocab, V, prompt.device, rules is not None)
    rows = torch.arange(B).repeat_interleave(beam)
    cache = cache.select(rows)
    router.expand(beam)
    prompt = prompt.repeat_interleave(beam, dim=0)
    scores = torch.zeros(B, beam)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    seqs: list[list[list[int]]] = [[[] for _ in range(beam)] for _ in range(B)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    row_done = [False] * B
    with router.scope():
        prompt_logits = decoder_step(model, prompt, cache)
    no_speech = _no_speech(prompt_logits[::beam], vocab)
    logits = prompt_logits[:, -1]
    beam_rows = [b for b in range(B) for _ in range(beam)]
    for step in range(max_new):
        logits = logits.float() + (first if step == 0 else always)
        if rules is not None:
            logits = rules(logits, [s for row in seqs for s in row], beam_rows, step == 0)
        _stop_spent(logits, beam_rows, budget, step, vocab.eot)
        lp = F.log_softmax(logits, dim=-1).view(B, beam, V)
        cand = (scores[:, :, None] + lp).view(B, beam * V)
        top_s, top_i = cand.topk(2 * beam, dim=-1)
        new_scores = torch.full((B, beam), float("-inf"))
        src = torch.zeros(B, beam, dtype=torch.long)
        nxt = torch.full((B, beam), vocab.eot, dtype=torch.long)
        new_seqs: list[list[list[int]]] = []
        for b in range(B):
            kept: list[list[int]] = []
            if row_done[b]:
                new_seqs.append(seqs[b])
                continue
            for s, i in zip(top_s[b].tolist(), top_i[b].tolist()):
                k, tok = divmod(i, V)
                if s == float("-inf"):
                    break
                if tok == vocab.eot:
                    finished[b].append((s, seqs[b][k]))
                else:
                    j = len(kept)
                    new_scores[b, j], src[b, j], nxt[b, j] = s, k, tok
                    kept.append(seqs[b][k] + [tok])
                if len(kept) == beam:
                    break
            while len(kept) < beam:
                kept.append([])
            new_seqs.append(kept)
            if len(finished[b]) >= beam:
                row_done[b] = True
                new_scores[b] = float("-inf")
        seqs, scores = new_seqs, new_scores
        if all(row_done) or step == max_new - 1:
            break
        index = (torch.arange(B)[:, None] * beam + src).view(-1)
        cache = cache.select(index)
        router.select(index)
        _yield_point()
        with router.scope():
            logits = decoder_step(model, nxt.view(-1, 1), cache)[:, -1]
    out_tokens, out_lp = [], []
    for b in range(B):
        pool = finished[b] or [(float(scores[b, k]), seqs[b][k]) for k in range(beam)
                               if scores[b, k] > float("-inf")]
        s, toks = max(pool, key=lambda p: p[0] / (len(p[1]) + 1))
        out_tokens.append(toks)
        out_lp.append(s / (len(toks) + 1))
    return out_tokens, out_lp, no_speech


@torch.no_grad()
def decode_batch(model, vocab: Vocabulary, features: torch.Tensor, frame_lengths: torch.Tensor | None,
                 prompts: list[list[int]], routing=None, options: DecodeOptions = DecodeOptions(),
                 encoded: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> list[DecodeResult]:
    """Decode B clips; `prompts[i]` is row i's start sequence (same length for all rows)."""
    B = features.shape[0]
    if len(prompts) != B or len({len(p) for p in prompts}) != 1:
        raise ValueError("one prompt per row, all of the same length")
    router = Router(routing)
    if encoded is not None:
        enc, keep = encoded
    else:
        with router.scope():
            enc, keep = encode(model, features, frame_lengths, between_layers=_yield_point)
    max_ctx = model.config.max_target_positions // 2
    max_new = min(options.max_new_tokens or max_ctx, model.config.max_target_positions - len(prompts[0]))
    prompt = torch.tensor(prompts, dtype=torch.long, device=features.device)
    # The last timestamp each row's audio allows: its number of encoder positions.
    max_index = [enc.shape[1]] * B if keep is None else keep.sum(1).tolist()
    rate = options.max_tokens_per_second
    budget = None if rate is None else [int(8 + rate * n * TIME_PRECISION) for n in max_index]
    results: list[DecodeResult | None] = [None] * B
    todo = list(range(B))
    # Per row and seeded alike: identical inputs sample identically, whatever the batch.
    generators = [torch.Generator().manual_seed(options.seed) for _ in range(B)]
    for t_i, temperature in enumerate(options.temperatures):
        idx = torch.tensor(todo)
        router.reset()
        router.select(idx) if len(todo) < B else None
        sub_keep = None if keep is None else keep[idx]
        with router.scope():   # the cross-attention k/v projections are LoRA layers too
            cache = init_cache(model, enc[idx], sub_keep)
        sub_rules = _TimestampRules(vocab, options, [max_index[i] for i in todo]) if options.timestamps else None
        sub_budget = None if budget is None else [budget[i] for i in todo]
        token_lps = None
        if temperature == 0 and options.beam_size > 1:
            toks, lps, nsp = _beam_search(model, cache, prompt[idx], vocab, max_new, options.beam_size,
                                          router, sub_rules, sub_budget)
        else:
            token_lps = [[] for _ in todo]   # per row: each token's log-probability
            toks, lps, nsp = _greedy_or_sample(model, cache, prompt[idx], vocab, max_new, temperature,
                                               router, [generators[i] for i in todo], sub_rules, sub_budget,
                                               token_lps)
        last = t_i == len(options.temperatures) - 1
        retry = []
        for k, (row, t, lp, ns) in enumerate(zip(todo, toks, lps, nsp)):
            text = vocab.decode(t)
            res = DecodeResult(t, text, lp, compression_ratio(text), temperature, no_speech_prob=ns,
                               token_logprobs=None if token_lps is None else token_lps[k])
            bad = ((options.compression_ratio_threshold is not None
                    and res.compression_ratio > options.compression_ratio_threshold)
                   or (options.logprob_threshold is not None and lp < options.logprob_threshold
                       # Whisper does not retry what it takes for silence (short clips
                       # get the no-speech rule too: Transcriber._decode_short)
                       and not is_silence(res, options)))
            prev = results[row]
            if prev is None or better_result(res, prev, options):
                results[row] = res
            if bad and not last:
                retry.append(row)
        if not retry:
            break
        todo = retry
    return [r for r in results if r is not None]


def better_result(new: DecodeResult, old: DecodeResult, options: DecodeOptions) -> bool:
    """Among fallback attempts prefer one without a repetition loop, then the likelier one."""
    thr = options.compression_ratio_threshold
    new_loop = thr is not None and new.compression_ratio > thr
    old_loop = thr is not None and old.compression_ratio > thr
    if new_loop != old_loop:
        return not new_loop
    return new.avg_logprob > old.avg_logprob


@torch.no_grad()
def language_probs(model, vocab: Vocabulary, features: torch.Tensor, frame_lengths: torch.Tensor | None,
                   routing=None, encoded=None, candidates: list[str] | None = None) -> torch.Tensor:
    """Whisper's language ID: softmax over the language tokens after <|startoftranscript|>.

    Returns [B, n] probabilities over `candidates` (default: every language the backbone has),
    in that order.
    """
    codes = candidates or vocab.languages
    with routed(routing):
        enc, keep = encoded if encoded is not None else encode(model, features, frame_lengths)
        cache = init_cache(model, enc, keep)
        sot = torch.full((enc.shape[0], 1), vocab.sot, dtype=torch.long, device=enc.device)
        logits = decoder_step(model, sot, cache)[:, -1].float()
    ids = torch.tensor([vocab.language_ids[c] for c in codes], device=enc.device)
    return F.softmax(logits[:, ids], dim=-1)

