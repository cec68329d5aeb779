"""Short inputs decoded in the middle of a long input's window (a server's fairness) leave
the long transcript exactly as it is without them: the long rows' routing is restored."""
from __future__ import annotations

import numpy as np

from lora_whisper.inference.decoding import DecodeOptions


def test_preempting_decodes_do_not_change_the_long_transcript(tiny_run):
    from lora_whisper.inference.transcriber import load

    t = load(run=str(tiny_run), options=DecodeOptions(temperatures=(0.0,), max_new_tokens=12, loop_guard=False,
                                                      compression_ratio_threshold=None, logprob_threshold=None))
    rng = np.random.default_rng(0)
    long = (rng.standard_normal(16000 * 65) * 0.1).astype(np.float32)
    shorts = [(rng.standard_normal(16000) * 0.1).astype(np.float32) for _ in range(3)]
    plain = t.transcribe([long], language=["de"])[0]
    served = []

    def preempt() -> bool:
        if len(served) >= 3:
            return False
        lang = ("en", "pl", None)[len(served)]   # other experts, a MoE language, detection
        served.append(t.transcribe([shorts[len(served)]], language=[lang])[0])
        return True

    again = t.transcribe([long], language=["de"], preempt=preempt)[0]
    assert len(served) == 3 and all(s.error is None for s in served)
    assert again.text == plain.text and [g.text for g in again.segments] == [g.text for g in plain.segments]
    assert [s.text for s in served] == [t.transcribe(x, language=l).text for x, l in zip(shorts, ("en", "pl", None))]
