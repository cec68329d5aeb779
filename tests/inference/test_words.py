"""Word timestamps: Whisper's DTW, word grouping, and words on every path (short clips,
timestamp seeking, VAD chunks) monotonic and inside their segments, without changing them
(tiny random Whisper; the real model in test_words_real.py)."""
from __future__ import annotations

import numpy as np
import pytest

from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.transcriber import Transcriber
from lora_whisper.inference.words import alignment_heads, dtw, split_words

SR = 16000
GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=16)


def _dtw_reference(x: np.ndarray):
    """openai-whisper's dtw_cpu, loop for loop."""
    N, M = x.shape
    cost = np.ones((N + 1, M + 1)) * np.inf
    trace = -np.ones((N + 1, M + 1))
    cost[0, 0] = 0
    for j in range(1, M + 1):
        for i in range(1, N + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t
    i, j = N, M
    trace[0, :] = 2
    trace[:, 0] = 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        if trace[i, j] == 0:
            i, j = i - 1, j - 1
        elif trace[i, j] == 1:
            i -= 1
        else:
            j -= 1
    p = np.array(path[::-1])
    return p[:, 0], p[:, 1]


@pytest.mark.parametrize("shape", [(1, 5), (6, 40), (15, 90), (30, 30)])
def test_dtw_matches_whispers_loop(rng, shape):
    x = rng.standard_normal(shape)
    ours, ref = dtw(x), _dtw_reference(x)
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])


def test_words_split_on_spaces_and_keep_every_token(tiny):
    v = tiny.vocab
    ids = v.encode(" Hello, world. It's fine") + [v.eot]
    words, groups = split_words(v, ids, "en")
    assert [t for g in groups for t in g] == ids
    assert words[:5] == [" Hello", ",", " world", ".", " It's"]
    zh, zh_groups = split_words(v, v.encode("你好世界") + [v.eot], "zh")
    assert zh[:-1] == ["你好", "世界"] and [t for g in zh_groups for t in g][:-1] == v.encode("你好世界")


def test_alignment_heads_whisper_base_and_fallback(tiny, real_backbone):
    heads = alignment_heads(real_backbone.model)
    assert heads == [(3, 1), (4, 2), (4, 3), (4, 7), (5, 1), (5, 2), (5, 4), (5, 6)]   # openai-whisper's
    cfg = tiny.model.config
    assert alignment_heads(tiny.model) == [(layer, h) for layer in range(cfg.decoder_layers // 2, cfg.decoder_layers)
                                           for h in range(cfg.decoder_attention_heads)]


def _check(result):
    assert result.segments
    last = 0.0
    for g in result.segments:
        assert g.words is not None
        for w in g.words:
            assert g.start <= w.start <= w.end <= g.end and w.start >= last - 1e-9
            assert 0.0 <= w.probability <= 1.0 and w.word
            last = w.start


def test_words_on_short_and_seeking_paths_leave_segments_unchanged(tiny, rng):
    t = Transcriber(tiny, options=GREEDY, batch_size=4)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4 * SR, 9 * SR, 70 * SR)]
    plain = t.transcribe(clips, language=["en", "de", "en"])
    timed = t.transcribe(clips, language=["en", "de", "en"], word_timestamps=True)
    for a, b in zip(plain, timed):
        assert [(g.start, g.end, g.text) for g in a.segments] == [(g.start, g.end, g.text) for g in b.segments]
        _check(b)
    assert timed[2].segments[-1].start > 29.0   # seeking went past the first window
    d = timed[0].to_dict()
    assert set(d["segments"][0]["words"][0]) == {"word", "start", "end", "probability"}
    assert "words" not in plain[0].to_dict()["segments"][0]


def test_words_follow_each_rows_expert(tiny, rng):
    """Rows routed to different experts align with their own expert (the teacher-forced pass
    is routed as decoding was): a batch gives each row what it gives alone."""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    t = Transcriber(tiny, bank=bank, options=GREEDY, batch_size=4)
    clips = [rng.standard_normal(6 * SR).astype(np.float32) * 0.1 for _ in range(2)]
    together = t.transcribe(clips, language=["de", "en"], word_timestamps=True)
    for clip, lang, r in zip(clips, ("de", "en"), together):
        alone = t.transcribe(clip, language=lang, word_timestamps=True)
        assert [w for g in alone.segments for w in g.words] == [w for g in r.segments for w in g.words]


def test_words_leave_a_routed_runs_segments_unchanged(tiny, rng):
    """The encoder has experts too: asking for word timestamps (which keep the encoder output
    for the alignment pass) must not decode on the bare encoder. Short and seeking paths,
    given and N-best routes."""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    t = Transcriber(tiny, bank=bank, options=GREEDY, batch_size=4)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4 * SR, 6 * SR, 40 * SR)]
    for language in (["de", "en", "de"], None):
        plain = t.transcribe(clips, language=language)
        timed = t.transcribe(clips, language=language, word_timestamps=True)
        for a, b in zip(plain, timed):
            assert (a.language, a.expert) == (b.language, b.expert)
            assert [(g.start, g.end, g.text) for g in a.segments] == [(g.start, g.end, g.text) for g in b.segments]


def test_median_filter_is_whispers(rng):
    import torch
    import torch.nn.functional as F

    from lora_whisper.inference.words import _median_filter

    x = torch.tensor(rng.standard_normal((3, 5, 40)), dtype=torch.float32)
    ref = F.pad(x[None], (3, 3, 0, 0), mode="reflect")[0].unfold(-1, 7, 1).median(-1).values   # openai's
    assert torch.equal(_median_filter(x, 7), ref)
