"""Word timestamps, Whisper's way (openai/whisper timing.py; faster-whisper does the same).

After a window is decoded, its text tokens are run once more through the decoder, teacher-
forced and batched with the other rows (each row routed to its expert, as in decoding); the
cross-attention of the alignment heads (the heads whose attention follows the audio: public
per model size in openai-whisper) is softmaxed over the window's real frames, normalised per
head, median-filtered over time and averaged; dynamic time warping over (tokens x frames)
gives each token the frame where it starts, and tokens are grouped into words (on spaces, or
per character for languages written without them). Punctuation is merged into its word, and
a word longer than twice the median is cut at a sentence end, as Whisper does. Unlike
Whisper, a segment's times are left as decoded and its words are kept inside it, so turning
word timestamps on never changes the segments.
"""
from __future__ import annotations

import base64
import gzip
import string
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lora_whisper.backbone.forward import merge_heads, split_heads
from lora_whisper.data.features import HOP_LENGTH, SAMPLE_RATE
from lora_whisper.inference.decoding import Router

FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH / 2   # encoder positions per second (50)
MEDIAN_FILTER = 7
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}

# openai-whisper's _ALIGNMENT_HEADS (whisper/__init__.py): base85 of a gzipped bool array
# [decoder layers x heads], by model size. Keyed here by (layers, heads, d_model), which
# tells the multilingual sizes apart; large models are told apart by version, not shape, so
# they use the generation config's heads or the fallback.
_HEADS = {
    (4, 6, 384): b"ABzY8bu8Lr0{>%RKn9Fp%m@SkK7Kt=7ytkO",                     # tiny
    (6, 8, 512): b"ABzY8KQ!870{>%RzyTQH3`Q^yNP!>##QT-<FaQ7m",                # base
    (12, 12, 768): b"ABzY8DmU6=0{>%Rpa?J`kvJ6qF(V^F86#Xh7JUGMK}P<N0000",     # small
    (24, 16, 1024): b"ABzY8B0Jh+0{>%R7}kK1fFL7w6%<-Pf*t^=N)Qr&0RR9",         # medium
}


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float

    def mapped(self, to_original: Callable[..., float]) -> "Word":
        """This word on another timeline (a VAD chunk's -> the file's)."""
        s = to_original(self.start)
        return Word(self.word, s, max(s, to_original(self.end, is_end=True)), self.probability)

    def shifted(self, offset: float) -> "Word":
        return Word(self.word, round(self.start + offset, 3), round(self.end + offset, 3), self.probability)


def alignment_heads(model) -> list[tuple[int, int]]:
    """(decoder layer, head) pairs: the generation config's, openai's table for the model's
    size, or Whisper's fallback, every head of the upper half of the decoder."""
    cfg = model.config
    gen = getattr(model, "generation_config", None)
    heads = getattr(gen, "alignment_heads", None) if gen is not None else None
    if heads:
        return [(int(a), int(b)) for a, b in heads]
    layers, n_heads = cfg.decoder_layers, cfg.decoder_attention_heads
    key = _HEADS.get((layers, n_heads, cfg.d_model))
    if key is not None:
        mask = np.frombuffer(gzip.decompress(base64.b85decode(key)), dtype=bool).reshape(layers, n_heads)
        return [(int(a), int(b)) for a, b in np.argwhere(mask)]
    return [(layer, h) for layer in range(layers // 2, layers) for h in range(n_heads)]


@torch.no_grad()
def forced_attention(model, tokens: torch.Tensor, enc: torch.Tensor, heads: list[tuple[int, int]],
                     keep: torch.Tensor | None = None, hidden: bool = True):
    """Teacher-forced decoder pass -> (final decoder states [B, L, D] or None, alignment-head
    cross-attention logits [B, len(heads), L, S]). Walks the same modules as decoding (LoRA
    wrappers and int8 layers included); without `hidden` it stops at the last alignment
    layer's cross-attention scores."""
    dec = model.model.decoder
    L = tokens.shape[1]
    x = dec.embed_tokens(tokens) + dec.embed_positions.weight[:L]
    by_layer: dict[int, list[int]] = {}
    for layer_i, h in heads:
        by_layer.setdefault(layer_i, []).append(h)
    captured = {}
    mask = None if keep is None else keep[:, None, None, :]   # padded encoder positions
    last = max(by_layer)
    for i, layer in enumerate(dec.layers):
        a = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q, k, v = (split_heads(p(h), a.num_heads) for p in (a.q_proj, a.k_proj, a.v_proj))
        x = x + a.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        c = layer.encoder_attn
        h = layer.encoder_attn_layer_norm(x)
        q = split_heads(c.q_proj(h), c.num_heads)
        k = split_heads(c.k_proj(enc), c.num_heads).to(q.dtype)
        v = split_heads(c.v_proj(enc), c.num_heads).to(q.dtype)
        if i in by_layer:
            scores = torch.matmul(q, k.transpose(2, 3)) * c.head_dim ** -0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            for hd in by_layer[i]:
                captured[(i, hd)] = scores[:, hd]
            if i == last and not hidden:
                break
            out = torch.matmul(scores.softmax(-1), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + c.out_proj(merge_heads(out))
        h = layer.final_layer_norm(x)
        x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
    states = dec.layer_norm(x) if hidden else None
    return states, torch.stack([captured[hd] for hd in heads], 1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whisper's dynamic time warping over [N tokens, M frames] -> (token, frame) path.

    A row of the accumulated cost at a time: with a = min(up-left, up), the row is
    S_j + cummin_k(a_k - S_{k-1}) for S the row's running sum (steps left only add the
    row's own costs), so only the N rows loop in Python. The trace takes Whisper's choice
    rule (diagonal, then up, else left)."""
    N, M = cost.shape
    acc = np.full((N + 1, M + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((N + 1, M + 1), np.int8)
    x = cost.astype(np.float64)
    for i in range(1, N + 1):
        prev = acc[i - 1]
        a = np.minimum(prev[:-1], prev[1:])            # for j = 1..M
        s = np.cumsum(x[i - 1])
        s_before = np.concatenate([[0.0], s[:-1]])
        acc[i, 1:] = s + np.minimum.accumulate(a - s_before)
        c0, c1, c2 = prev[:-1], prev[1:], acc[i, :-1]
        t = np.full(M, 2, np.int8)
        t[(c1 < c0) & (c1 < c2)] = 1
        t[(c0 < c1) & (c0 < c2)] = 0
        trace[i, 1:] = t
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j, path = N, M, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    p = np.array(path)
    return p[:, 0], p[:, 1]


# A sorting network for 7 values (compare-exchange pairs): its middle output is the median.
# Element-wise min/max over the 7 shifted views is 1.6x faster than torch's median over an
# unfold on a CPU (0.31 vs 0.52 s for 8 heads x 120 tokens x 1500 frames), same numbers.
_NET7 = [(0, 6), (2, 3), (4, 5), (0, 2), (1, 4), (3, 6), (0, 1), (2, 5), (3, 4), (1, 2), (4, 6), (2, 3),
         (4, 5), (1, 2), (3, 4), (5, 6)]


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Whisper's median filter over the last axis (reflect padding)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    y = F.pad(x[None], (pad, pad, 0, 0), mode="reflect")[0].unfold(-1, width, 1)
    if width != 7:
        return y.median(-1).values
    v = [y[..., i] for i in range(7)]
    for i, j in _NET7:
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[3]


def split_words(vocab, tokens: list[int], language: str | None) -> tuple[list[str], list[list[int]]]:
    """Whisper's split_to_word_tokens: on unicode boundaries, then (most languages) joined
    into words at spaces and punctuation. `tokens` ends with <|endoftext|>."""
    tok = vocab.tokenizer
    full = tok.decode(tokens, skip_special_tokens=False)
    words, groups, cur, offset = [], [], [], 0
    for t in tokens:
        cur.append(t)
        text = tok.decode(cur, skip_special_tokens=False)
        if "\ufffd" not in text or full[offset + text.index("\ufffd")] == "\ufffd":
            words.append(text)
            groups.append(cur)
            cur = []
            offset += len(text)
    if language in NO_SPACE_LANGUAGES:
        return words, groups
    out_w, out_t = [], []
    for w, g in zip(words, groups):
        if g[0] >= vocab.eot or w.startswith(" ") or w.strip() in string.punctuation or not out_w:
            out_w.append(w)
            out_t.append(list(g))
        else:
            out_w[-1] += w
            out_t[-1].extend(g)
    return out_w, out_t


@dataclass
class _Timing:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def _merge_punctuation(ts: list[_Timing]) -> None:
    """Whisper's merge_punctuations: opening marks join the next word, closing the previous."""
    i = len(ts) - 2
    j = len(ts) - 1
    while i >= 0:
        prev, foll = ts[i], ts[j]
        if prev.word.startswith(" ") and prev.word.strip() in PREPEND:
            foll.word, foll.tokens = prev.word + foll.word, prev.tokens + foll.tokens
            prev.word, prev.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(ts):
        prev, foll = ts[i], ts[j]
        if not prev.word.endswith(" ") and foll.word in APPEND:
            prev.word, prev.tokens = prev.word + foll.word, prev.tokens + foll.tokens
            foll.word, foll.tokens = "", []
        else:
            i = j
        j += 1


def _timings(vocab, text_tokens: list[int], language: str | None, matrix: np.ndarray,
             token_probs: np.ndarray) -> list[_Timing]:
    """One row: its text tokens, the [tokens + 1, frames] alignment matrix -> word timings."""
    text_idx, time_idx = dtw(-matrix)
    words, groups = split_words(vocab, text_tokens + [vocab.eot], language)
    if len(groups) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(g) for g in groups[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_times = time_idx[jumps] / FRAMES_PER_SECOND
    starts, ends = jump_times[bounds[:-1]], jump_times[bounds[1:]]
    probs = [float(np.mean(token_probs[i:j])) for i, j in zip(bounds[:-1], bounds[1:])]
    return [_Timing(w, g, float(s), float(e), p) for w, g, s, e, p in zip(words, groups, starts, ends, probs)]


def _limit_long_words(ts: list[_Timing]) -> None:
    """Whisper: a word over twice the median word length, at a sentence end, is cut short."""
    durations = np.array([t.end - t.start for t in ts if t.end > t.start])
    if not len(durations):
        return
    median = min(0.7, float(np.median(durations)))
    longest = median * 2
    ends = ".。!！?？"
    for i in range(1, len(ts)):
        if ts[i].end - ts[i].start > longest:
            if ts[i].word in ends:
                ts[i].end = ts[i].start + longest
            elif ts[i - 1].word in ends:
                ts[i].start = ts[i].end - longest


@torch.no_grad()
def align_rows(t, enc: torch.Tensor, prompts: list[list[int]], routing, pieces_per_row: list[list],
               samples: list[int], offsets: list[float] | None = None,
               keep: torch.Tensor | None = None, results: list | None = None) -> list[list[list[Word]]]:
    """Words for each row's pieces (segments), on the pieces' timeline.

    `enc` (and `keep`, its padding mask): the rows' encoder output; `prompts`: their decoding
    prompts (language token included); `pieces_per_row`: longform.Piece lists; `samples`:
    each row's audio length; `offsets`: where each row's window starts on the pieces'
    timeline (seconds; default 0); `results`: the rows' DecodeResults, whose per-token
    log-probabilities give the words' probabilities (else one more projection per row:
    Whisper's softmax over text tokens)."""
    vocab, model = t.vocab, t.model
    out: list[list[list[Word]]] = [[[] for _ in pieces] for pieces in pieces_per_row]
    rows = [r for r, pieces in enumerate(pieces_per_row) if any(p.tokens for p in pieces)]
    if not rows:
        return out
    sot = [[tok for tok in prompts[r] if tok < vocab.timestamp_begin and tok != vocab.no_timestamps]
           + [vocab.no_timestamps] for r in rows]
    texts = [[tok for p in pieces_per_row[r] for tok in p.tokens if tok < vocab.eot] for r in rows]
    seqs = [s + x + [vocab.eot] for s, x in zip(sot, texts)]
    width = max(len(s) for s in seqs)
    batch = torch.tensor([s + [vocab.eot] * (width - len(s)) for s in seqs], device=enc.device)
    heads = alignment_heads(model)
    index = torch.tensor(rows)
    given = [_text_probs(vocab, results[r]) if results is not None else None for r in rows]
    router = Router(routing)
    if len(rows) < enc.shape[0]:
        router.select(index)
    with router.scope():
        states, qk = forced_attention(model, batch, enc[index], heads, None if keep is None else keep[index],
                                      hidden=any(g is None or len(g) < len(x) for g, x in zip(given, texts)))
    for k, r in enumerate(rows):
        n_sot, n_text = len(sot[k]), len(texts[k])
        frames = max(1, min(qk.shape[-1], int(round(samples[r] / HOP_LENGTH / 2))))
        w = qk[k, :, :n_sot + n_text + 1, :frames].float().softmax(-1)
        std, mean = torch.std_mean(w, dim=-2, keepdim=True, unbiased=False)
        w = _median_filter((w - mean) / std, MEDIAN_FILTER)
        matrix = w.mean(0)[n_sot - 1:-1]   # from <|notimestamps|>: each row predicts the next token
        # Whisper slices from len(sot_sequence) over [sot_sequence, notimestamps, text, eot],
        # i.e. the rows predicting each text token and the end.
        if given[k] is not None and len(given[k]) >= n_text:
            token_probs = given[k][:n_text]   # the pieces' text is a prefix of the decoded text
        else:
            logits = model.proj_out(states[k, n_sot - 1:n_sot - 1 + n_text])
            probs = logits[:, :vocab.eot].float().softmax(-1)
            token_probs = probs[torch.arange(n_text), torch.tensor(texts[k])].numpy()
        lang = _row_language(vocab, prompts[r])
        timings = _timings(vocab, texts[k], lang, matrix.numpy(), token_probs)
        _merge_punctuation(timings)
        _limit_long_words(timings)
        off = offsets[r] if offsets is not None else 0.0
        for tm in timings:
            tm.start, tm.end = tm.start + off, tm.end + off
        wi = 0
        for pi, piece in enumerate(pieces_per_row[r]):
            n, saved = len([x for x in piece.tokens if x < vocab.eot]), 0
            words = []
            while wi < len(timings) and saved < n:
                tm = timings[wi]
                if tm.word:
                    s = min(max(tm.start, piece.start), piece.end)
                    e = min(max(tm.end, s), piece.end)
                    if words:   # monotonic
                        s = max(s, words[-1].end)
                        e = max(e, s)
                    words.append(Word(tm.word, round(s, 3), round(e, 3), round(tm.probability, 4)))
                saved += len(tm.tokens)
                wi += 1
            out[r][pi] = words
    return out


def _text_probs(vocab, res) -> np.ndarray | None:
    """Probabilities of a DecodeResult's text tokens as decoded, when it kept them."""
    lps = getattr(res, "token_logprobs", None)
    if lps is None or len(lps) != len(res.tokens):
        return None
    return np.exp(np.array([lp for tok, lp in zip(res.tokens, lps) if tok < vocab.eot]))


def _row_language(vocab, prompt: list[int]) -> str | None:
    ids = {v: k for k, v in vocab.language_ids.items()}
    return next((ids[x] for x in prompt if x in ids), None)
