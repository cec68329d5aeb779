"""Duration-bucketed batches, the training dataset and its collate function.

Features are computed at each batch's longest clip (not 30 s), so batches of similar
durations waste little padding; buckets are shuffled so an epoch is not ordered by length.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lora_whisper.audio import audio_duration
from lora_whisper.data.features import log_mel
from lora_whisper.data.utterance import Utterance
from lora_whisper.languages import uses_cer

MODES = ("mixed", "per_language")
IGNORE_INDEX = -100
MAX_TARGET_POSITIONS = 448  # Whisper's decoder position table


class DurationBucketSampler(Sampler[list[int]]):
    """Yields lists of dataset indices.

    Each epoch: shuffle (per language in `per_language` mode), cut into buckets of
    `bucket_size` utterances, sort each bucket by duration, cut batches of at most
    `max_utterances` rows and at most `max_seconds` of padded audio (rows x longest clip,
    which is what the encoder computes), then shuffle the batch order. A clip longer than
    `max_seconds` gets a batch of its own rather than being dropped.

    With `num_replicas` > 1 every rank builds the same batch list and takes every
    `num_replicas`-th batch, so ranks get disjoint batches and the same count (up to
    `num_replicas - 1` batches an epoch are left out; the next epoch reshuffles). With
    `max_seconds` the batch count can vary a little from epoch to epoch: `len()` is the
    count for the epoch last set.
    """

    def __init__(self, durations: Sequence[float], languages: Sequence[str] | None = None, *,
                 max_utterances: int | None = 16, max_seconds: float | None = None,
                 mode: str = "mixed", bucket_size: int | None = None, shuffle: bool = True,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if max_utterances is None and max_seconds is None:
            raise ValueError("give max_utterances, max_seconds or both")
        if max_utterances is not None and max_utterances < 1:
            raise ValueError("max_utterances must be at least 1")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.durations = np.asarray(durations, dtype=np.float64)
        if np.isnan(self.durations).any():
            raise ValueError("every utterance needs a duration (see durations_of)")
        if mode == "per_language":
            if languages is None or len(languages) != len(self.durations):
                raise ValueError("per_language mode needs one language per utterance")
        self.languages = list(languages) if languages is not None else None
        self.max_utterances = max_utterances
        self.max_seconds = max_seconds
        self.mode = mode
        # ~50 batches per bucket: sorted enough to pad little, random enough to mix voices.
        self.bucket_size = bucket_size or 50 * (max_utterances or 16)
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    @classmethod
    def for_utterances(cls, utterances: Sequence[Utterance], **kwargs) -> DurationBucketSampler:
        return cls(durations_of(utterances), [u.language for u in utterances], **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All ranks' batches for an epoch, in order (before the DDP share is taken)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        out: list[list[int]] = []
        for group in self._groups():
            order = rng.permutation(group) if self.shuffle else np.asarray(group)
            for start in range(0, len(order), self.bucket_size):
                bucket = order[start:start + self.bucket_size]
                bucket = bucket[np.argsort(self.durations[bucket], kind="stable")]
                out.extend(self._cut(bucket))
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        self._cache = (epoch, out)
        return out

    def __iter__(self):
        batches = self.batches()
        usable = len(batches) - len(batches) % self.num_replicas
        return iter(batches[self.rank:usable:self.num_replicas])

    def __len__(self) -> int:
        return len(self.batches()) // self.num_replicas

    def _groups(self) -> list[list[int]]:
        if self.mode == "mixed":
            return [list(range(len(self.durations)))]
        by_lang: dict[str, list[int]] = {}
        for i, lang in enumerate(self.languages):
            by_lang.setdefault(lang, []).append(i)
        return [by_lang[k] for k in sorted(by_lang)]

    def _cut(self, bucket: np.ndarray) -> list[list[int]]:
        batches, current, longest = [], [], 0.0
        for idx in bucket.tolist():
            d = self.durations[idx]
            full = self.max_utterances is not None and len(current) >= self.max_utterances
            too_long = self.max_seconds is not None and current and \
                (len(current) + 1) * max(longest, d) > self.max_seconds
            if full or too_long:
                batches.append(current)
                current, longest = [], 0.0
            current.append(idx)
            longest = max(longest, d)
        if current:
            batches.append(current)
        return batches


def durations_of(utterances: Sequence[Utterance]) -> list[float]:
    """Each utterance's duration, read from the file header where the source gave none."""
    return [u.duration if u.duration is not None else audio_duration(u.audio) for u in utterances]


class SpeechDataset(Dataset):
    """Items are dicts: audio (16 kHz float32), the token sequence
    `<|startoftranscript|><|xx|><|transcribe|><|notimestamps|> text <|endoftext|>`, the
    prompt length, and the language's index in `languages` (-1 when it is not there:
    such rows get the bare backbone)."""

    def __init__(self, utterances: Sequence[Utterance], vocab, languages: Sequence[str],
                 n_mels: int = 80, features_in_collate: bool = True):
        self.utterances = list(utterances)
        self.vocab = vocab
        self.languages = list(languages)
        self._index = {code: i for i, code in enumerate(self.languages)}
        self.n_mels = n_mels
        self.features_in_collate = features_in_collate

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> dict:
        utt = self.utterances[i]
        prompt = list(self.vocab.sot_sequence(utt.language))
        text = self.vocab.encode(text_for_tokens(utt.text, utt.language))
        text = text[: MAX_TARGET_POSITIONS - len(prompt) - 1]
        return {
            "id": utt.id,
            "audio": utt.load(),
            "tokens": prompt + text + [self.vocab.eot],
            "prompt_length": len(prompt),
            "language": utt.language,
            "language_index": self._index.get(utt.language, -1),
        }

    def collate(self, items: list[dict]) -> dict:
        return collate(items, self.n_mels, self.vocab.eot, features=self.features_in_collate)


def text_for_tokens(text: str, language: str | None) -> str:
    # Whisper's own transcripts start with a space in languages written with spaces
    # (" Hello"), and not in Chinese or Japanese; training on the same form keeps the first
    # text token in the distribution the backbone learned.
    text = " ".join(text.split())
    return text if language is not None and uses_cer(language) else " " + text


def collate(items: list[dict], n_mels: int = 80, pad_token_id: int = 50257,
            features: bool = True) -> dict:
    """-> input_features [B, n_mels, T] (T = longest clip), frame_lengths [B],
    decoder_input_ids and labels [B, L] (labels are the sequence shifted left, -100 on the
    prompt and on padding, so the loss covers text and <|endoftext|> only),
    decoder_attention_mask [B, L], language_index [B], languages, ids.

    With `features=False` the raw `audio` list is returned instead of features, for
    computing them elsewhere (see `add_features`)."""
    seqs = [item["tokens"] for item in items]
    L = max(len(s) for s in seqs) - 1
    B = len(items)
    decoder_input_ids = torch.full((B, L), pad_token_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, (seq, item) in enumerate(zip(seqs, items)):
        seq = torch.as_tensor(seq, dtype=torch.long)
        n = len(seq) - 1
        decoder_input_ids[i, :n] = seq[:-1]
        labels[i, :n] = seq[1:]
        # Position k predicts token k+1: the first prompt_length-1 labels are the prompt's
        # own language/task/notimestamps tokens, given, not learned.
        labels[i, : item["prompt_length"] - 1] = IGNORE_INDEX
        mask[i, :n] = 1
    batch = {
        "decoder_input_ids": decoder_input_ids,
        "labels": labels,
        "decoder_attention_mask": mask,
        "language_index": torch.tensor([item["language_index"] for item in items], dtype=torch.long),
        "languages": [item["language"] for item in items],
        "ids": [item["id"] for item in items],
    }
    if features:
        batch["input_features"], batch["frame_lengths"] = log_mel([it["audio"] for it in items], n_mels)
    else:
        batch["audio"] = [item["audio"] for item in items]
    return batch


def add_features(batch: dict, n_mels: int = 80) -> dict:
    """Compute features for a batch collated with `features=False`."""
    if "audio" in batch:
        batch["input_features"], batch["frame_lengths"] = log_mel(batch.pop("audio"), n_mels)
    return batch


def make_loader(dataset: SpeechDataset, sampler: Sampler, num_workers: int = 1,
                prefetch_factor: int = 4) -> DataLoader:
    """A DataLoader over `sampler`'s batches; the worker decodes, resamples and computes
    features while the main process trains. One worker gives 300-400 utt/s on 2 shared
    cores, and computing features there (one torch thread) rather than in the main process
    (two threads, slowed ~10x when the cores are shared) is what makes it fast: see
    benchmarks/results/data_loader.md. num_workers=0 loads in the main process."""
    kwargs = {}
    if num_workers > 0:
        # torch runs each worker with one intra-op thread, which is what we want: the
        # trainer's threads already fill the cores.
        kwargs = dict(persistent_workers=True, prefetch_factor=prefetch_factor)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate,
                      num_workers=num_workers, **kwargs)
