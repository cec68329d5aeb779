"""Decoding on a tiny random Whisper: batching, beams, caps, fallback."""
from __future__ import annotations

import numpy as np
import torch

from lora_whisper.backbone.forward import decoder_logits, decoder_step, encode, init_cache
from lora_whisper.data.features import log_mel
from lora_whisper.inference.decoding import DecodeOptions, compression_ratio, decode_batch, language_probs

GREEDY = DecodeOptions(temperatures=(0.0,), max_new_tokens=12, compression_ratio_threshold=None,
                       logprob_threshold=None)


def _clips(rng, seconds=(1.0, 2.5, 0.6)):
    return [rng.standard_normal(int(s * 16000)).astype(np.float32) * 0.1 for s in seconds]


def test_mixed_length_batch_equals_rows_alone(tiny, rng):
    clips = _clips(rng)
    feats, lens = log_mel(clips, tiny.n_mels)
    prompts = [tiny.vocab.sot_sequence("en")] * len(clips)
    batch = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts, options=GREEDY)
    for clip, res in zip(clips, batch):
        f, l = log_mel([clip], tiny.n_mels)
        alone = decode_batch(tiny.model, tiny.vocab, f, l, prompts[:1], options=GREEDY)[0]
        assert alone.tokens == res.tokens


def test_encoder_padding_is_masked(tiny, rng):
    a, b = _clips(rng, (0.5, 2.0))
    f_pair, l_pair = log_mel([a, b], tiny.n_mels)
    f_one, l_one = log_mel([a], tiny.n_mels)
    with torch.no_grad():
        enc_pair, keep = encode(tiny.model, f_pair, l_pair)
        enc_one, _ = encode(tiny.model, f_one, l_one)
    n = enc_one.shape[1]
    assert keep[0, :n].all() and not keep[0, n:].any()
    assert torch.allclose(enc_pair[0, :n], enc_one[0], atol=5e-4)  # masked vs unmasked kernels round differently


def test_cached_steps_equal_teacher_forcing(tiny, rng):
    feats, lens = log_mel(_clips(rng, (1.2,)), tiny.n_mels)
    ids = torch.tensor([tiny.vocab.sot_sequence("de") + [400, 500, 600]])
    with torch.no_grad():
        enc, keep = encode(tiny.model, feats, lens)
        full = decoder_logits(tiny.model, ids, enc, keep)
        cache = init_cache(tiny.model, enc, keep)
        first = decoder_step(tiny.model, ids[:, :4], cache)
        rest = [decoder_step(tiny.model, ids[:, i:i + 1], cache) for i in range(4, ids.shape[1])]
    stepped = torch.cat([first] + rest, dim=1)
    assert torch.allclose(full, stepped, atol=1e-5)


def test_max_new_tokens_cap(tiny, rng):
    feats, lens = log_mel(_clips(rng), tiny.n_mels)
    prompts = [tiny.vocab.sot_sequence("en")] * 3
    for cap in (1, 5):
        res = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts,
                           options=DecodeOptions(temperatures=(0.0,), max_new_tokens=cap))
        assert all(len(r.tokens) <= cap for r in res)


def test_token_budget_follows_each_rows_audio_length(tiny, rng):
    """A row stops after 8 + rate x seconds tokens (a random model never stops by itself)."""
    clips = _clips(rng, (0.2, 6.0))
    feats, lens = log_mel(clips, tiny.n_mels)
    prompts = [tiny.vocab.sot_sequence("en")] * 2
    for beam in (1, 3):
        opts = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                             max_tokens_per_second=5.0, beam_size=beam, suppress_blank=False)
        res = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts, options=opts)
        seconds = [((int(n) + 1) // 2) * 0.02 for n in lens]   # audio + its 1 s tail
        assert [len(r.tokens) <= int(8 + 5.0 * s) for r, s in zip(res, seconds)] == [True, True]
        assert len(res[0].tokens) < len(res[1].tokens)


def test_beam_search_batch_equals_alone_and_scores_at_least_greedy(tiny, rng):
    clips = _clips(rng)
    feats, lens = log_mel(clips, tiny.n_mels)
    prompts = [tiny.vocab.sot_sequence("fr")] * 3
    beam = DecodeOptions(beam_size=3, temperatures=(0.0,), max_new_tokens=8,
                         compression_ratio_threshold=None, logprob_threshold=None)
    batch = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts, options=beam)
    for clip, res in zip(clips, batch):
        f, l = log_mel([clip], tiny.n_mels)
        assert decode_batch(tiny.model, tiny.vocab, f, l, prompts[:1], options=beam)[0].tokens == res.tokens
    assert all(len(r.tokens) <= 8 for r in batch)


def test_no_special_tokens_in_output(tiny, rng):
    feats, lens = log_mel(_clips(rng), tiny.n_mels)
    res = decode_batch(tiny.model, tiny.vocab, feats, lens, [tiny.vocab.sot_sequence("en")] * 3, options=GREEDY)
    assert all(t < tiny.vocab.eot for r in res for t in r.tokens)


def test_temperature_fallback_retries_loops(tiny, rng):
    feats, lens = log_mel(_clips(rng, (1.0,)), tiny.n_mels)
    prompts = [tiny.vocab.sot_sequence("en")]
    # A threshold no output can meet forces every temperature to be tried; the last is kept
    # only if it is better, so the result is one of the attempts and decoding terminates.
    opts = DecodeOptions(temperatures=(0.0, 0.5, 1.0), max_new_tokens=10, compression_ratio_threshold=0.0,
                         logprob_threshold=None)
    res = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts, options=opts)[0]
    assert res.temperature in (0.0, 0.5, 1.0)
    assert compression_ratio("ha " * 50) > 2.4 > compression_ratio("a plain sentence of words")


def test_language_probs_sum_to_one(tiny, rng):
    feats, lens = log_mel(_clips(rng), tiny.n_mels)
    p = language_probs(tiny.model, tiny.vocab, feats, lens)
    assert p.shape == (3, len(tiny.vocab.languages))
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
