"""A compact Whisper forward over transformers' modules: real-length encoder, masked
cross-attention, and a KV cache we own.

Why not `model.generate()`/`model.forward()`: transformers' encoder insists on 3000 frames
(30 s) and its cache classes change between releases. Walking the same modules ourselves keeps
every `nn.Linear` call (so LoRA wrappers see each projection) while letting a batch of clips run
at the longest clip's length, with padded frames masked so a row's result does not depend on
what it was batched with.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def encoder_lengths(frame_lengths: torch.Tensor) -> torch.Tensor:
    """Mel frames -> encoder positions (conv2 has stride 2)."""
    return (frame_lengths + 1) // 2


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def _attend(q, k, v, mask=None, causal=False):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def encode(model: nn.Module, features: torch.Tensor,
           frame_lengths: torch.Tensor | None = None, between_layers=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """features [B, n_mels, T] -> (hidden [B, S, D], key padding mask [B, S] True = real or None).

    T may be anything up to 3000; the positional table is sliced to the input's length.
    `between_layers()`: called after each layer (a server runs short requests there while it
    encodes a long one's window).
    """
    enc = model.model.encoder
    features = features.to(enc.conv1.weight.dtype)   # a bfloat16 encoder (int8 compute type)
    frame_keep = None
    if frame_lengths is not None and bool((frame_lengths < features.shape[-1]).any()):
        # Zero the padding before each conv, as a clip run alone sees the convs' zero padding:
        # then a row's output does not depend on the longer clips it is batched with.
        frame_keep = (torch.arange(features.shape[-1], device=features.device)[None, :]
                      < frame_lengths.to(features.device)[:, None])[:, None, :].to(features.dtype)
        features = features * frame_keep
    x = F.gelu(enc.conv1(features))
    if frame_keep is not None:
        x = x * frame_keep.to(x.dtype)
    x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
    S = x.shape[1]
    if S > enc.embed_positions.weight.shape[0]:
        raise ValueError(f"input of {S} encoder positions exceeds the model's {enc.embed_positions.weight.shape[0]}")
    x = x + enc.embed_positions.weight[:S]
    x = F.dropout(x, p=enc.dropout, training=enc.training)
    keep = None
    mask = None
    if frame_lengths is not None:
        lens = encoder_lengths(frame_lengths.to(x.device))
        if bool((lens < S).any()):
            keep = torch.arange(S, device=x.device)[None, :] < lens[:, None]
            mask = keep[:, None, None, :]  # broadcast over heads and queries
    for layer in enc.layers:
        attn = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q = split_heads(attn.q_proj(h), attn.num_heads)
        k = split_heads(attn.k_proj(h), attn.num_heads)
        v = split_heads(attn.v_proj(h), attn.num_heads)
        h = merge_heads(_attend(q, k, v, mask))
        x = x + F.dropout(attn.out_proj(h), p=layer.dropout, training=layer.training)
        h = layer.final_layer_norm(x)
        h = layer.fc2(F.dropout(layer.activation_fn(layer.fc1(h)), p=layer.activation_dropout,
                                training=layer.training))
        x = x + F.dropout(h, p=layer.dropout, training=layer.training)
        if between_layers is not None:
            between_layers()
    return enc.layer_norm(x), keep


@dataclass
class KVCache:
    """Per decoder layer: self-attention keys/values so far, and the cross-attention ones.

    Cross-attention keys are kept transposed ([B, H, head_dim, S]) with the padding mask as an
    additive bias: each step then attends with two plain matmuls, which on CPU beat
    scaled_dot_product_attention's kernel for a few queries over 1500 keys (measured 1.19 vs
    1.49 ms per call at batch 8, whisper-base, 2 threads)."""
    self_k: list[torch.Tensor | None]
    self_v: list[torch.Tensor | None]
    cross_kt: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    cross_bias: torch.Tensor | None
    length: int = 0

    def select(self, index: torch.Tensor) -> "KVCache":
        """Keep/reorder/repeat rows (beam search, finished rows dropped)."""
        pick = lambda ts: [t.index_select(0, index) if t is not None else None for t in ts]  # noqa: E731
        return KVCache(pick(self.self_k), pick(self.self_v), pick(self.cross_kt), pick(self.cross_v),
                       None if self.cross_bias is None else self.cross_bias.index_select(0, index),
                       self.length)

    def keep_rows(self, index: torch.Tensor) -> "KVCache":
        """`select` for a strictly increasing subset of rows (finished rows dropped), with the
        cross-attention keys and values (the bulk of the cache: 1500 positions per row and
        layer) compacted in place: a copy would briefly hold the batch's cache twice, the
        peak of a long file's memory at batch 8. This cache's tensors are reused."""
        keep = index.tolist()
        for ts in (self.cross_kt, self.cross_v):
            for i, t in enumerate(ts):
                for new, old in enumerate(keep):
                    if new != old:
                        t[new].copy_(t[old])
                ts[i] = t[:len(keep)]
        pick = lambda ts: [t.index_select(0, index) if t is not None else None for t in ts]  # noqa: E731
        return KVCache(pick(self.self_k), pick(self.self_v), self.cross_kt, self.cross_v,
                       None if self.cross_bias is None else self.cross_bias.index_select(0, index),
                       self.length)


def init_cache(model: nn.Module, encoder_out: torch.Tensor, encoder_keep: torch.Tensor | None) -> KVCache:
    dec = model.model.decoder
    ck, cv = [], []
    for layer in dec.layers:
        a = layer.encoder_attn
        scale = a.head_dim ** -0.5   # folded into the keys once instead of every step
        kt = (split_heads(a.k_proj(encoder_out), a.num_heads) * scale).transpose(2, 3).contiguous()
        # Kept in the dtype the projections give: bfloat16 under the int8 compute type, whose
        # cross k/v layers (and experts, in inference) compute in it (backbone/quantize.py).
        v = split_heads(a.v_proj(encoder_out), a.num_heads)
        ck.append(kt)
        cv.append(v)
    n = len(dec.layers)
    bias = None
    if encoder_keep is not None:
        bias = torch.zeros(encoder_keep.shape, dtype=encoder_out.dtype, device=encoder_out.device)
        bias = bias.masked_fill(~encoder_keep, float("-inf"))[:, None, None, :]
    return KVCache([None] * n, [None] * n, ck, cv, bias, 0)


def _cross_attend(q: torch.Tensor, kt: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    scores = torch.matmul(q.to(kt.dtype), kt).float()
    if bias is not None:
        scores = scores + bias
    return torch.matmul(scores.softmax(dim=-1).to(v.dtype), v).to(q.dtype)


def decoder_step(model: nn.Module, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """tokens [B, L] continuing the cached prefix -> logits [B, L, V]; updates `cache` in place."""
    dec = model.model.decoder
    L = tokens.shape[1]
    start = cache.length
    if start + L > dec.embed_positions.weight.shape[0]:
        raise ValueError("decoded sequence exceeds the model's maximum target length")
    x = dec.embed_tokens(tokens) + dec.embed_positions.weight[start:start + L]
    causal_mask = None
    if L > 1:
        # New queries see every cached key and the new keys up to themselves.
        causal_mask = torch.ones(L, start + L, dtype=torch.bool, device=tokens.device).tril(start)
    for i, layer in enumerate(dec.layers):
        a = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q = split_heads(a.q_proj(h), a.num_heads)
        k = split_heads(a.k_proj(h), a.num_heads)
        v = split_heads(a.v_proj(h), a.num_heads)
        if cache.self_k[i] is not None:
            k = torch.cat([cache.self_k[i], k], dim=2)
            v = torch.cat([cache.self_v[i], v], dim=2)
        cache.self_k[i], cache.self_v[i] = k, v
        x = x + a.out_proj(merge_heads(_attend(q, k, v, causal_mask)))
        c = layer.encoder_attn
        h = layer.encoder_attn_layer_norm(x)
        q = split_heads(c.q_proj(h), c.num_heads)
        x = x + c.out_proj(merge_heads(_cross_attend(q, cache.cross_kt[i], cache.cross_v[i], cache.cross_bias)))
        h = layer.final_layer_norm(x)
        x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
    cache.length = start + L
    return model.proj_out(dec.layer_norm(x))


def decoder_logits(model: nn.Module, input_ids: torch.Tensor, encoder_out: torch.Tensor,
                   encoder_keep: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher-forced logits for training: [B, L] -> [B, L, V] (dropout active in train mode)."""
    return model.proj_out(decoder_hidden(model, input_ids, encoder_out, encoder_keep))


def decoder_hidden(model: nn.Module, input_ids: torch.Tensor, encoder_out: torch.Tensor,
                   encoder_keep: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder's final (layer-normed) states [B, L, D], before the vocabulary projection:
    training projects only the positions that have a label."""
    dec = model.model.decoder
    L = input_ids.shape[1]
    x = dec.embed_tokens(input_ids) + dec.embed_positions.weight[:L]
    x = F.dropout(x, p=dec.dropout, training=dec.training)
    cross_mask = None if encoder_keep is None else encoder_keep[:, None, None, :]
    for layer in dec.layers:
        a = layer.self_attn
        h = layer.self_attn_layer_norm(x)
        q, k, v = (split_heads(p(h), a.num_heads) for p in (a.q_proj, a.k_proj, a.v_proj))
        h = a.out_proj(merge_heads(_attend(q, k, v, causal=True)))
        x = x + F.dropout(h, p=layer.dropout, training=layer.training)
        c = layer.encoder_attn
        h = layer.encoder_attn_layer_norm(x)
        q = split_heads(c.q_proj(h), c.num_heads)
        k = split_heads(c.k_proj(encoder_out), c.num_heads).to(q.dtype)   # bfloat16 under int8
        v = split_heads(c.v_proj(encoder_out), c.num_heads).to(q.dtype)
        h = c.out_proj(merge_heads(_attend(q, k, v, cross_mask)))
        x = x + F.dropout(h, p=layer.dropout, training=layer.training)
        h = layer.final_layer_norm(x)
        h = layer.fc2(F.dropout(layer.activation_fn(layer.fc1(h)), p=layer.activation_dropout,
                                training=layer.training))
        x = x + F.dropout(h, p=layer.dropout, training=layer.training)
    return dec.layer_norm(x)
