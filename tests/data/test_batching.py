"""Duration-bucketed sampler, dataset and collate (with a stand-in vocabulary)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.data.batching import (IGNORE_INDEX, DurationBucketSampler, SpeechDataset,
                                        collate, make_loader)
from lora_whisper.data.utterance import Utterance

SOT, TRANSCRIBE, NOTIMESTAMPS, EOT = 50258, 50359, 50363, 50257
LANG_IDS = {"pl": 50269, "it": 50274, "en": 50259, "zh": 50260}


class FakeVocab:
    """The three members of Vocabulary the data pipeline uses; one token per character."""

    eot = EOT

    def encode(self, text):
        return [ord(c) % 50000 for c in text]

    def sot_sequence(self, language, task="transcribe", timestamps=False):
        return [SOT, LANG_IDS[language], TRANSCRIBE] + ([] if timestamps else [NOTIMESTAMPS])


def durations_and_langs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(1, 20, n).tolist(), rng.choice(["pl", "it", "en"], n).tolist()


def test_every_index_once_and_bucketed():
    d, langs = durations_and_langs()
    s = DurationBucketSampler(d, langs, max_utterances=8, bucket_size=80, seed=1)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(d)))
    assert max(len(b) for b in batches) == 8
    # sorting within buckets keeps padding low: longest/shortest within a batch stays close
    spread = np.mean([max(d[i] for i in b) - min(d[i] for i in b) for b in batches])
    random_spread = np.mean([max(d[i] for i in b) - min(d[i] for i in b)
                             for b in np.array_split(np.random.default_rng(0).permutation(len(d)), len(batches))])
    assert spread < random_spread / 3


def test_max_seconds_caps_padded_audio():
    d, langs = durations_and_langs()
    d[5] = 100.0  # longer than the cap: alone, not dropped
    s = DurationBucketSampler(d, langs, max_utterances=None, max_seconds=60, seed=0)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(d)))
    for b in batches:
        assert len(b) * max(d[i] for i in b) <= 60 or len(b) == 1
    assert [5] in batches


def test_per_language_batches_are_monolingual():
    d, langs = durations_and_langs()
    s = DurationBucketSampler(d, langs, max_utterances=6, mode="per_language", seed=3)
    batches = list(s)
    assert all(len({langs[i] for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(d)))
    assert len({langs[b[0]] for b in batches[:10]}) > 1  # batch order is shuffled across languages
    mixed = list(DurationBucketSampler(d, langs, max_utterances=6, mode="mixed", seed=3))
    assert any(len({langs[i] for i in b}) > 1 for b in mixed)


def test_deterministic_per_seed_and_epoch():
    d, langs = durations_and_langs()
    make = lambda seed: DurationBucketSampler(d, langs, max_utterances=8, seed=seed)  # noqa: E731
    a, b = make(7), make(7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    assert list(make(8)) != first
    a.set_epoch(0)
    assert list(a) == first


@pytest.mark.parametrize("mode,cap", [("mixed", {"max_utterances": 8}),
                                      ("per_language", {"max_seconds": 50, "max_utterances": None})])
def test_ddp_ranks_are_disjoint_and_equal(mode, cap):
    d, langs = durations_and_langs(397)
    world = 3
    for epoch in range(3):
        shares = []
        for rank in range(world):
            s = DurationBucketSampler(d, langs, mode=mode, seed=5, num_replicas=world, rank=rank, **cap)
            s.set_epoch(epoch)
            shares.append(list(s))
            assert len(shares[-1]) == len(s)
        assert len({len(x) for x in shares}) == 1
        seen = [i for share in shares for b in share for i in b]
        assert len(seen) == len(set(seen))  # disjoint
        total = len(DurationBucketSampler(d, langs, mode=mode, seed=5, **cap).batches(epoch))
        assert len(shares[0]) == total // world


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError):
        DurationBucketSampler([1.0], ["pl"], max_utterances=None, max_seconds=None)
    with pytest.raises(ValueError):
        DurationBucketSampler([1.0], None, mode="per_language")
    with pytest.raises(ValueError):
        DurationBucketSampler([1.0], ["pl"], rank=2, num_replicas=2)


@pytest.fixture
def utterances(tmp_path, tone):
    specs = [("a", 0.5, "pl", "ala"), ("b", 1.2, "it", "ciao bella"), ("c", 0.3, "en", "hi"),
             ("d", 0.8, "zh", "你好")]
    return [Utterance(uid, str(tone(tmp_path / f"{uid}.wav", sec)), text, lang, duration=sec)
            for uid, sec, lang, text in specs]


def test_dataset_item(utterances):
    ds = SpeechDataset(utterances, FakeVocab(), languages=["it", "pl"], n_mels=80)
    item = ds[0]
    assert item["audio"].dtype == np.float32 and len(item["audio"]) == 8000
    v = FakeVocab()
    assert item["tokens"] == v.sot_sequence("pl") + v.encode(" ala") + [EOT]
    assert item["language_index"] == 1 and ds[1]["language_index"] == 0 and ds[2]["language_index"] == -1
    assert ds[3]["tokens"][4:-1] == v.encode("你好")  # no leading space where text has none


@pytest.mark.parametrize("n_mels", [80, 128])
def test_collate_shapes_and_labels(utterances, n_mels):
    ds = SpeechDataset(utterances, FakeVocab(), languages=["pl", "it"], n_mels=n_mels)
    items = [ds[i] for i in range(4)]
    batch = ds.collate(items)
    B = 4
    tail = 100  # log_mel keeps 1 s of silence after each clip
    T = max(int(np.ceil(u.duration * 100)) for u in utterances) + tail
    assert batch["input_features"].shape == (B, n_mels, T + T % 2)
    assert batch["frame_lengths"].tolist() == [50 + tail, 120 + tail, 30 + tail, 80 + tail]
    L = max(len(it["tokens"]) for it in items) - 1
    assert batch["decoder_input_ids"].shape == batch["labels"].shape == (B, L)
    assert batch["language_index"].dtype == torch.long
    assert batch["language_index"].tolist() == [0, 1, -1, -1]
    assert batch["languages"] == ["pl", "it", "en", "zh"]
    for i, it in enumerate(items):
        seq, n = it["tokens"], len(it["tokens"]) - 1
        assert batch["decoder_input_ids"][i, :n].tolist() == seq[:-1]
        assert batch["decoder_input_ids"][i, n:].eq(EOT).all()  # padded with eot
        labels = batch["labels"][i]
        assert labels[:3].eq(IGNORE_INDEX).all()  # <|xx|> <|transcribe|> <|notimestamps|>
        assert labels[3:n].tolist() == seq[4:]  # text + eot are learned
        assert labels[n - 1] == EOT
        assert labels[n:].eq(IGNORE_INDEX).all()  # padding
        assert batch["decoder_attention_mask"][i].sum() == n


def test_collate_without_features_returns_audio(utterances):
    ds = SpeechDataset(utterances, FakeVocab(), languages=["pl"])
    batch = collate([ds[0], ds[1]], features=False)
    assert "input_features" not in batch and len(batch["audio"]) == 2


def test_loader_with_a_worker(utterances):
    ds = SpeechDataset(utterances, FakeVocab(), languages=["pl", "it", "en", "zh"])
    sampler = DurationBucketSampler.for_utterances(utterances, max_utterances=2, seed=0)
    loader = make_loader(ds, sampler, num_workers=1)
    ids = sorted(i for batch in loader for i in batch["ids"])
    assert ids == ["a", "b", "c", "d"]
    assert len(loader) == 2
