"""log_mel with context: a window of a long file gets the features one STFT over the file gives."""
from __future__ import annotations

import numpy as np
import torch

from lora_whisper.data.features import CONTEXT_SAMPLES, log_mel


def test_window_with_context_equals_the_whole_files_frames(rng):
    audio = (0.05 * rng.standard_normal(16000 * 45)).astype(np.float32)
    audio[16000 * 20:16000 * 21] *= 10  # the loudest second lies inside the window: same floor
    seek = 16000 * 9 + 320 * 7          # seeks are whole timestamps (320 samples)
    window = audio[seek:seek + 480000]
    whole, _ = log_mel([audio], max_frames=10**6, tail_seconds=0)
    got, lens = log_mel([window], context=[audio[seek - CONTEXT_SAMPLES:seek]])
    assert int(lens[0]) == 3000
    # All but the last frame, which sees the window's end (the next window's audio is not read).
    assert torch.allclose(got[0, :, :-1], whole[0, :, seek // 160:seek // 160 + 2999], atol=1e-5)
    plain, _ = log_mel([window])
    assert not torch.allclose(plain[0, :, :2], got[0, :, :2], atol=1e-3)  # mirror padding differs


def test_context_batch_rows_equal_rows_alone(rng):
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000 * 3, 16000 * 7)]
    ctx = [np.zeros(0, np.float32), (0.1 * rng.standard_normal(CONTEXT_SAMPLES)).astype(np.float32)]
    both, lens = log_mel(clips, context=ctx)
    for i in range(2):
        alone, n = log_mel([clips[i]], context=[ctx[i]])
        assert int(lens[i]) == int(n[0])
        assert torch.equal(both[i, :, :int(n[0])], alone[0])
    assert torch.equal(log_mel([clips[0]], context=[ctx[0]])[0], log_mel([clips[0]])[0])  # no context: as before


def test_level_carries_a_recordings_floor_into_a_quiet_window(rng):
    from lora_whisper.data.features import loudness

    loud = (0.5 * rng.standard_normal(16000 * 5)).astype(np.float32)
    quiet = (1e-4 * rng.standard_normal(16000 * 5)).astype(np.float32)
    f_loud, n_loud = log_mel([loud])
    level = loudness(f_loud, n_loud)[0]
    alone, _ = log_mel([quiet])
    carried, _ = log_mel([quiet], level=[level])
    assert float(carried.min()) == (level - 8.0 + 4.0) / 4.0       # clamped at the file's floor
    assert float(alone.min()) < float(carried.min())
    assert torch.equal(log_mel([loud], level=[level])[0], f_loud)  # the loudest part: unchanged
    assert torch.equal(log_mel([quiet], level=[None])[0], alone)
