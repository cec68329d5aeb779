"""Long audio whose language changes inside a window: end the window where its language does.

A 30 s window gets one language ID and is decoded in that language, but a meeting that
switches language mid-window would have the window's minority part decoded (and labelled) in
the wrong language. After a window is decoded, each of its complete segments (at least
`MIN_SEGMENT_S` long) gets a language ID of its own, on its own audio, all segments of all
windows of the batch in one pass. At the first segment whose language differs from the
window's (and is at least `switch_probability` likely), the window is cut: the segments before
it are kept and the next window starts at that segment, so it gets its own language ID and is
decoded in it. When the very first segment differs, the window is decoded again in that
segment's language (once per seek point, so it always moves on).
"""
from __future__ import annotations

from lora_whisper.data.features import SAMPLE_RATE

MIN_SEGMENT_S = 1.0   # shorter segments (a name, "ok") are too short for a language ID to trust


def cut_at_language_changes(t, job, active, windows, decoded: list[list], lang: dict, redo: dict) -> None:
    """`decoded[row]` = [pieces, step] of `active[row]`, changed in place; `lang[index]` =
    (language, probs) the next window starts from; `redo[index]` = the seek point already
    decoded again (see module doc)."""
    items: dict[tuple | None, list] = {}
    for row, cur in enumerate(active):
        if job.forced[cur.index]:
            continue
        key = None if job.candidates[cur.index] is None else tuple(job.candidates[cur.index])
        for k, p in enumerate(decoded[row][0]):
            if p.end - p.start >= MIN_SEGMENT_S:
                a = windows[row][int((p.start - cur.offset) * SAMPLE_RATE):int((p.end - cur.offset) * SAMPLE_RATE)]
                items.setdefault(key, []).append((row, k, a))
    found: dict[tuple[int, int], dict] = {}
    for key, group in items.items():
        dists = t.detect_clips([a for _, _, a in group], list(key) if key else None, job.policy.lid)
        for (row, k, _), d in zip(group, dists):
            found[(row, k)] = d
    for row, cur in enumerate(active):
        pieces, step = decoded[row]
        for k, p in enumerate(pieces):
            d = found.get((row, k))
            if d is None:
                continue
            top, prob = next(iter(d.items()))
            if top == p.language or prob < job.policy.switch_probability:
                continue
            if k > 0:
                cut = int(round((p.start - cur.offset) * SAMPLE_RATE))
                if 0 < cut < step:
                    decoded[row] = [pieces[:k], cut]
                    lang[cur.index] = (top, d)
            elif redo.get(cur.index) != cur.seek:
                redo[cur.index] = cur.seek
                decoded[row] = [[], 0]
                lang[cur.index] = (top, d)
            break
