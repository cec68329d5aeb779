"""Routing users can trust: candidate languages, soft and N-best routing when unsure, a language
per window of long audio (tiny random Whisper with a bank of de/en/pl experts)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.inference import decoding
from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.routing_policy import RoutingPolicy, Route, routes_for, sticky
from lora_whisper.inference.transcriber import Transcriber

SR = 16000
GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=6, loop_guard=False)


def _sound(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = np.sin(2 * np.pi * (150 + 100 * seed) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture()
def routed(tiny):
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en", "pl"], seed=0)
    perturb_experts(bank, 0.5, 1)

    def make(**kw) -> Transcriber:
        kw.setdefault("options", GREEDY)
        return Transcriber(tiny, bank=bank, **kw)

    return make


def test_candidates_default_to_the_experts_and_are_never_left(routed):
    t = routed()
    assert t.candidates == ["de", "en", "pl"]
    clips = [_sound(3, s) for s in range(4)]
    full = t.detect_language(clips, candidates="all")
    assert len(full[0]) == len(t.vocab.languages)
    for cands in (None, ["fr", "en"], "it,ja,ko"):
        dists = t.detect_language(clips, candidates=cands)
        want = set(t.candidates if cands is None else (cands.split(",") if isinstance(cands, str) else cands))
        for d, f in zip(dists, full):
            assert set(d) == want and abs(sum(d.values()) - 1) < 1e-5
            # renormalised over the set: the full distribution's ratios are kept
            a, b = list(d)[:2]
            assert d[a] / d[b] == pytest.approx(f[a] / f[b], rel=1e-4)
        for r in t.transcribe(clips, candidates=cands):
            assert r.language in want and set(r.language_probs) == want
            assert r.language_probability == r.language_probs[r.language]
    with pytest.raises(ValueError, match="xx"):
        t.transcribe(clips[0], candidates="en,xx")


def test_expert_lid_scores_each_candidate_under_its_own_expert(routed):
    from lora_whisper.inference.decoding import language_probs

    t = routed(policy=RoutingPolicy(lid="experts"))
    clip = _sound(4, 2)
    got = t.detect_language(clip, candidates=["de", "en"])
    feats, lens = t.features_of([clip])
    own = [language_probs(t.model, t.vocab, feats, lens, routing=t.routing_for([c]), candidates=["de", "en"])[0, k]
           for k, c in enumerate(["de", "en"])]
    want = torch.softmax(torch.stack(own).log(), 0)
    assert got["de"] == pytest.approx(float(want[0]), abs=1e-5)
    assert got != t.detect_language(clip, candidates=["de", "en"], method="backbone")


def test_routes_when_unsure():
    mix = {"de": {"de": 1.0}, "en": {"en": 1.0}, "pl": {"de": 0.6, "pl": 0.4}, "xx": None}.get
    probs = {"pl": 0.5, "en": 0.3, "de": 0.2}
    hard = routes_for("pl", probs, RoutingPolicy(mode="hard"), mix)
    assert hard == [Route("pl", {"de": 0.6, "pl": 0.4})]
    assert routes_for("pl", probs, RoutingPolicy(mode="soft", threshold=0.5), mix)[0].kind == "hard"  # sure
    soft = routes_for("pl", probs, RoutingPolicy(mode="soft", threshold=0.9), mix)
    assert soft[0].language == "pl" and soft[0].kind == "soft"
    assert soft[0].spec == pytest.approx({"de": 0.6 * 0.625, "pl": 0.4 * 0.625, "en": 0.375})
    nbest = routes_for("pl", probs, RoutingPolicy(mode="nbest", top_k=3), mix)
    assert [(r.language, r.spec) for r in nbest] == [("pl", {"de": 0.6, "pl": 0.4}), ("en", "en"), ("de", "de")]
    assert routes_for("de", None, RoutingPolicy(mode="nbest"), mix) == [Route("de", "de")]  # given: never doubted
    # a language without an expert contributes the bare backbone (nothing) to a soft row
    assert routes_for("en", {"en": 0.5, "xx": 0.5}, RoutingPolicy(mode="soft"), mix)[0].spec == {"en": 0.5}


def test_sticky_windows():
    assert sticky(None, {"de": 0.4, "en": 0.6}, 0.7) == "en"
    assert sticky("de", {"de": 0.4, "en": 0.6}, 0.7) == "de"      # one unsure window does not flip
    assert sticky("de", {"de": 0.1, "en": 0.9}, 0.7) == "en"
    assert sticky("pl", {"de": 0.4, "en": 0.6}, 0.7) == "en"      # previous not a candidate


class _Spy:
    """Calls decode_batch through, recording the rows of each call."""

    def __init__(self, monkeypatch):
        self.rows: list[int] = []
        real = decoding.decode_batch

        def spy(model, vocab, features, *a, **kw):
            self.rows.append(features.shape[0])
            return real(model, vocab, features, *a, **kw)

        monkeypatch.setattr("lora_whisper.inference.transcriber.decode_batch", spy)


def test_soft_row_is_the_mixture_of_the_top_languages(routed, monkeypatch):
    t = routed(batch_size=8)
    clips = [_sound(2 + s, s) for s in range(3)]
    unsure = RoutingPolicy(mode="soft", threshold=1.0, top_k=2)   # every detected row is unsure
    spy = _Spy(monkeypatch)
    soft = t.transcribe(clips, language=[None, None, "en"], routing=unsure)
    assert spy.rows == [3]                      # one pass, no extra rows
    for r in soft[:2]:
        (a, pa), (b, pb) = list(r.language_probs.items())[:2]
        assert r.routing == "soft"
        want: dict = {}
        for lang, p in ((a, pa), (b, pb)):
            for e, w in t.mixture_for(lang).items():
                want[e] = want.get(e, 0.0) + w * p / (pa + pb)
        assert r.mixture == pytest.approx(want)
    assert soft[2].routing == "hard" and soft[2].language == "en" and soft[2].language_probs is None
    # the soft row decodes exactly as the bank's weighted row, prompted with the top language
    r = soft[0]
    feats, lens = t.features_of([clips[0]])
    alone = decoding.decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence(r.language)],
                                  routing=t.bank.routing_for([r.mixture]), options=GREEDY)
    assert alone[0].text == r.text


def test_nbest_decodes_each_top_language_in_one_pass_and_keeps_the_likelier(routed, monkeypatch):
    t = routed(batch_size=8)
    clips = [_sound(2 + s, s) for s in range(3)]
    spy = _Spy(monkeypatch)
    nbest = t.transcribe(clips, language=[None, None, "en"], routing=RoutingPolicy(mode="nbest", threshold=1.0))
    assert spy.rows == [5]                      # 2 + 2 copies + 1 given row, one batch
    for clip, r in zip(clips[:2], nbest[:2]):
        assert r.routing == "nbest"
        top2 = list(t.detect_language(clip))[:2]
        each = {lang: t.transcribe(clip, language=lang) for lang in top2}
        feats, lens = t.features_of([clip])
        lp = {lang: decoding.decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence(lang)],
                                          routing=t.routing_for([lang]), options=GREEDY)[0].avg_logprob
              for lang in top2}
        best = max(top2, key=lp.get)
        assert r.language == best and r.text == each[best].text and r.expert == t.expert_for(best)
    # sure rows are not duplicated
    spy.rows.clear()
    t.transcribe(clips, routing=RoutingPolicy(mode="nbest", threshold=0.0))
    assert spy.rows == [3]


def _switching(seconds=(40, 40)) -> np.ndarray:
    return np.concatenate([_sound(s, 3 * i + 1) for i, s in enumerate(seconds)])


def test_a_language_per_window_equals_each_window_alone(routed):
    """Every window of a long file is routed by its own language ID (no stickiness here);
    decoded next to other files it gives what it gives alone, and every segment carries the
    language its window was decoded in."""
    from lora_whisper.inference.language_id import detect_features

    policy = RoutingPolicy(switch_probability=0.0)
    t = routed(batch_size=4, policy=policy)
    audio = _switching()
    alone = t.transcribe(audio)
    assert len(alone.windows) >= 2 and alone.segments
    for w in alone.windows:                     # the window's language = its LID's top candidate
        start = int(round(w["start"] * SR))
        win = audio[start:start + 30 * SR]
        context = audio[max(0, start - 200):start]
        feats = t.features_of([win], [context], [None], silence_to_30s=True)
        assert w["language"] in t.candidates
        if start == 0:   # the level floor (loudest window so far) is known for the first window
            assert w["language"] == next(iter(detect_features(t, feats, t.candidates)[0]))
    by_window = {w["start"]: w["language"] for w in alone.windows}
    starts = sorted(by_window)
    for g in alone.segments:
        own = max(s for s in starts if s <= g.start + 1e-6)
        assert g.language == by_window[own]
    together = t.transcribe([_sound(50, 9), audio, _sound(8, 5)], language=["de", None, None], timestamps=True)
    assert [(g.start, g.text, g.language) for g in together[1].segments] == \
           [(g.start, g.text, g.language) for g in alone.segments]
    assert together[1].windows == alone.windows and together[0].windows == []
    assert {g.language for g in together[0].segments} <= {"de"}
    one = t.transcribe(audio, routing=RoutingPolicy(per_window=False))
    assert one.windows == [] and {g.language for g in one.segments} == {one.language}


def test_srt_and_vtt_say_the_language_of_each_segment_when_it_changes():
    from lora_whisper.inference.formats import to_srt, to_vtt
    from lora_whisper.inference.transcriber import Segment, Transcription

    t = Transcription("x", "a b", "de", segments=[Segment(0.0, 1.0, "a", "de"), Segment(1.0, 2.0, "b", "en")])
    assert "[de] a" in to_srt(t) and "[en] b" in to_srt(t)
    assert "<lang en>b</lang>" in to_vtt(t)
    same = Transcription("x", "a b", "de", segments=[Segment(0.0, 1.0, "a", "de"), Segment(1.0, 2.0, "b", "de")])
    assert "[de]" not in to_srt(same) and "<lang" not in to_vtt(same)
