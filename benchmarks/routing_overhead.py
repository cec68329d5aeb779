"""What per-row language routing costs on a CPU (real whisper-base, batch of 8 five-second clips).

Configurations, each timed for a forward pass (encode + teacher-forced decoder over 20 tokens)
and for greedy decoding (init_cache + 30 cached decoder steps, no EOS stop, so the work is
equal; the encoder output is computed outside this timer):
  plain      transformers' Whisper, no LoRA wrappers at all (reference)
  none       LoRA bank injected, routing None (bare backbone through the wrappers)
  one        every row routed to the same expert
  mixed      8 rows, 8 different experts, one batch
  sequential the same 8 rows as 8 single-row batches, one expert each
Within each repeat the configurations run stage by stage in turn (encode, decoder, each
decoding step), so load from other processes hits all alike; figures are medians of repeats.
Default 1 thread: on a shared 2-core machine, 2 OpenMP threads stall at every op's barrier
whenever another process holds a core (decode steps measured bimodal, ~50 ms or ~750 ms,
repeats varying 10x); one thread gives repeats within a few percent. `--threads 2` still works. Goals: mixed <= 1.25x one, sequential >= 3x mixed.

  LORA_WHISPER_CACHE=/tmp/lwcache .venv/bin/python benchmarks/routing_overhead.py
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LORA_WHISPER_CACHE", "/tmp/lwcache")

from lora_whisper.adapters import LoraSpec, inject, routed  # noqa: E402
from lora_whisper.backbone.forward import decoder_logits, decoder_step, encode, init_cache  # noqa: E402
from lora_whisper.backbone.load import load_backbone  # noqa: E402
from lora_whisper.data.features import log_mel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

LANGS = ["pl", "pt", "it", "zh", "da", "el", "cy", "ja"]
CONFIGS = ["plain", "none", "one", "mixed", "sequential"]


def cpu_model() -> str:
    return _common.machine()["cpu"]


git_commit = _common.git_commit


class Clock:
    """Wall time (the figure reported) and this process's CPU time (less sensitive to other
    processes on a shared machine, reported alongside)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "routing_overhead"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    bb = load_backbone()
    plain = copy.deepcopy(bb.model).eval()
    bank = inject(bb.model, LoraSpec(r=32), LANGS, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in bank.layers.values():
            for B in layer.lora_B:
                B.copy_(torch.randn(B.shape, generator=g) * 0.01)  # nonzero: real work, real effect
    model = bank.model.eval()

    rng = np.random.default_rng(0)
    n = len(LANGS)
    audio = [rng.standard_normal(int(args.seconds * 16000)).astype(np.float32) * 0.05 for _ in range(n)]
    # Real length, no silence tail: 5 s = 500 mel frames, the clip as recorded.
    feats, lengths = log_mel(audio, bb.n_mels, tail_seconds=0.0)
    prefix = torch.tensor([bb.vocab.sot_sequence(lang) for lang in LANGS])  # sot, language, task, notimestamps
    tokens = torch.cat([prefix, torch.randint(220, 20000, (n, 16), generator=g)], dim=1)  # 20 tokens

    def lanes(cfg):
        """(model, [(routing, row slice), ...]) for one configuration."""
        if cfg == "plain":
            return plain, [(None, slice(0, n))]
        if cfg == "none":
            return model, [(None, slice(0, n))]
        if cfg == "one":
            return model, [(bank.routing_for([LANGS[0]] * n), slice(0, n))]
        if cfg == "mixed":
            return model, [(bank.routing_for(LANGS), slice(0, n))]
        return model, [(bank.routing_for([lang]), slice(i, i + 1)) for i, lang in enumerate(LANGS)]

    def ctx(m, r):
        return contextlib.nullcontext() if m is plain else routed(r)

    # Work is cut into stages (encode; decoder; init_cache; each decoder step), and the timer
    # runs the configurations' stages in turn, so a burst of load from other processes lands
    # on all configurations alike instead of on whichever happened to run at that moment.
    def forward_stages(cfg):
        m, ls = lanes(cfg)
        encs = []

        def enc():
            for r, sl in ls:
                with ctx(m, r):
                    encs.append(encode(m, feats[sl], lengths[sl]))

        def dec():
            for (r, sl), (e, keep) in zip(ls, encs):
                with ctx(m, r):
                    decoder_logits(m, tokens[sl], e, keep)
        yield enc
        yield dec

    encoded = {}

    def decode_stages(cfg):
        m, ls = lanes(cfg)
        if cfg not in encoded:  # the encoder is not part of the decode timer
            encoded[cfg] = []
            for r, sl in ls:
                with ctx(m, r):
                    encoded[cfg].append(encode(m, feats[sl], lengths[sl]))
        caches, toks = [], []

        def first():
            for (r, sl), (e, keep) in zip(ls, encoded[cfg]):
                with ctx(m, r):
                    caches.append(init_cache(m, e, keep))
                    toks.append(decoder_step(m, prefix[sl], caches[-1])[:, -1].argmax(-1, keepdim=True))

        def step():
            for k, (r, _) in enumerate(ls):
                with ctx(m, r):
                    toks[k] = decoder_step(m, toks[k], caches[k])[:, -1].argmax(-1, keepdim=True)
        yield first
        for _ in range(args.steps - 1):
            yield step

    def interleaved(stages, order):
        """Run every configuration's stages round-robin; (wall, cpu) seconds per configuration."""
        gens = {c: stages(c) for c in order}
        spent = {c: [0.0, 0.0] for c in order}
        while gens:
            for c in list(gens):
                fn = next(gens[c], None)
                if fn is None:
                    del gens[c]
                    continue
                t = Clock()
                fn()
                wall, proc = t.stop()
                spent[c][0] += wall
                spent[c][1] += proc
        return spent

    load_before = os.getloadavg()
    times = {"forward": {c: [] for c in CONFIGS}, "decode": {c: [] for c in CONFIGS}}
    cpu = {"forward": {c: [] for c in CONFIGS}, "decode": {c: [] for c in CONFIGS}}
    with torch.inference_mode():
        interleaved(forward_stages, CONFIGS)  # warm-up (allocator, oneDNN kernels)
        interleaved(decode_stages, CONFIGS)   # also computes the encoder outputs decoding starts from
        for rep in range(args.repeats):
            order = CONFIGS[rep % len(CONFIGS):] + CONFIGS[: rep % len(CONFIGS)]
            for kind, stages in (("forward", forward_stages), ("decode", decode_stages)):
                for c, (wall, proc) in interleaved(stages, order).items():
                    times[kind][c].append(wall)
                    cpu[kind][c].append(proc)
            print(f"repeat {rep + 1}/{args.repeats} (forward/decode s): " + ", ".join(
                f"{c} {times['forward'][c][-1]:.2f}/{times['decode'][c][-1]:.2f}" for c in CONFIGS), flush=True)

    med = {k: {c: statistics.median(v) for c, v in d.items()} for k, d in times.items()}
    fastest = {k: {c: min(v) for c, v in d.items()} for k, d in times.items()}
    cpu_med = {k: {c: statistics.median(v) for c, v in d.items()} for k, d in cpu.items()}
    ratios = {k: {"mixed_over_one": med[k]["mixed"] / med[k]["one"],
                  "sequential_over_mixed": med[k]["sequential"] / med[k]["mixed"],
                  "one_over_none": med[k]["one"] / med[k]["none"],
                  "none_over_plain": med[k]["none"] / med[k]["plain"]} for k in med}
    goals = {k: {"mixed_within_1.25x_of_one": ratios[k]["mixed_over_one"] <= 1.25,
                 "sequential_at_least_3x_mixed": ratios[k]["sequential_over_mixed"] >= 3.0} for k in med}
    result = {
        "benchmark": "routing_overhead",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "command": "LORA_WHISPER_CACHE=/tmp/lwcache .venv/bin/python benchmarks/routing_overhead.py "
                   + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "setup": {"backbone": bb.source, "batch": n, "clip_seconds": args.seconds,
                  "mel_frames": int(feats.shape[-1]), "forward_tokens": int(tokens.shape[1]),
                  "decode_steps": args.steps, "lora": LoraSpec(r=32).to_dict(), "experts": LANGS,
                  "repeats": args.repeats, "dtype": "float32"},
        "seconds_median": med,
        "seconds_min": fastest,
        "cpu_seconds_median": cpu_med,
        "seconds_all": times,
        "ratios": ratios,
        "ratios_paired_median": {k: {  # median over repeats of each repeat's own ratio
            "mixed_over_one": statistics.median(a / b for a, b in zip(times[k]["mixed"], times[k]["one"])),
            "sequential_over_mixed": statistics.median(a / b for a, b in zip(times[k]["sequential"], times[k]["mixed"]))}
            for k in times},
        "ratios_of_min": {k: {"mixed_over_one": fastest[k]["mixed"] / fastest[k]["one"],
                              "sequential_over_mixed": fastest[k]["sequential"] / fastest[k]["mixed"]}
                          for k in fastest},
        "ratios_of_cpu_time": {k: {"mixed_over_one": cpu_med[k]["mixed"] / cpu_med[k]["one"],
                                   "sequential_over_mixed": cpu_med[k]["sequential"] / cpu_med[k]["mixed"]}
                               for k in cpu_med},
        "load_average_before_after": [load_before, os.getloadavg()],
        "goals_met": goals,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, out.with_suffix(".md"))
    write_plot(result, out.with_suffix(".png"))
    print(out.with_suffix(".md").read_text())
    return 0


def _threads(r: dict) -> str:
    n = r["machine"]["torch_threads"]
    return f"{n} CPU thread" + ("" if n == 1 else "s")


def write_markdown(r: dict, path: Path) -> None:
    m, q = r["seconds_median"], r["ratios"]
    lines = [
        "# Routing overhead (real whisper-base, CPU)",
        "",
        f"{r['setup']['batch']} clips of {r['setup']['clip_seconds']:g} s ({r['setup']['mel_frames']} mel frames), "
        f"r=32 on all targets, {len(r['setup']['experts'])} experts with nonzero B, fp32, "
        f"{_threads(r)} on {r['machine']['cpu']}; median of {r['setup']['repeats']} "
        f"interleaved repeats. Forward = encode + decoder over {r['setup']['forward_tokens']} tokens; "
        f"decode = init_cache + {r['setup']['decode_steps']} greedy cached steps (no EOS stop).",
        "",
        "| configuration | forward (s) | decode (s) |",
        "|---|---:|---:|",
    ]
    names = {"plain": "plain transformers Whisper (no wrappers)", "none": "(a) bank, no adapter",
             "one": "(b) one language, batch of 8", "mixed": "(c) 8 languages mixed, batch of 8",
             "sequential": "(d) 8 languages as 8 batches of 1"}
    for c in CONFIGS:
        lines.append(f"| {names[c]} | {m['forward'][c]:.3f} | {m['decode'][c]:.3f} |")
    lines += ["", "| ratio | forward | decode | goal |", "|---|---:|---:|---|"]
    for key, goal in (("mixed_over_one", "<= 1.25"), ("sequential_over_mixed", ">= 3"),
                      ("one_over_none", ""), ("none_over_plain", "")):
        lines.append(f"| {key.replace('_', ' ')} | {q['forward'][key]:.2f} | {q['decode'][key]:.2f} | {goal} |")
    mn, cq, pr = r["ratios_of_min"], r["ratios_of_cpu_time"], r["ratios_paired_median"]
    lines += ["", "The machine is shared with other jobs (load average before/after: "
              f"{', '.join('%.1f' % x for x in r['load_average_before_after'][0])} / "
              f"{', '.join('%.1f' % x for x in r['load_average_before_after'][1])}), so the same ratios "
              "as the median of each repeat's own ratio, from the fastest repeat, and from this process's CPU time:",
              "", "| ratio | forward (paired) | decode (paired) | forward (min) | decode (min) "
              "| forward (CPU time) | decode (CPU time) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for key in ("mixed_over_one", "sequential_over_mixed"):
        lines.append(f"| {key.replace('_', ' ')} | {pr['forward'][key]:.2f} | {pr['decode'][key]:.2f} | "
                     f"{mn['forward'][key]:.2f} | {mn['decode'][key]:.2f} | "
                     f"{cq['forward'][key]:.2f} | {cq['decode'][key]:.2f} |")
    if r["machine"]["torch_threads"] > 1:
        lines += ["", "With more than one thread on a shared machine, OpenMP barrier stalls (a thread waiting "
                  "for a descheduled sibling at every op) dominate short ops such as decoder steps; "
                  "compare the per-repeat figures in the JSON before trusting these ratios."]
    lines += ["", f"Date {r['date']}, commit {r['git_commit']}.", "", "```", r["command"], "```", ""]
    path.write_text("\n".join(lines))


def write_plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = r["seconds_median"]
    labels = ["plain", "(a) none", "(b) one", "(c) mixed", "(d) sequential"]
    x = np.arange(len(CONFIGS))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [m["forward"][c] for c in CONFIGS], 0.4, label="forward (encode + 20 tokens)")
    ax.bar(x + 0.2, [m["decode"][c] for c in CONFIGS], 0.4, label=f"greedy decode ({r['setup']['decode_steps']} steps)")
    ax.set_xticks(x, labels)
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"LoRA routing overhead, whisper-base, batch 8 x {r['setup']['clip_seconds']:g} s, "
                 f"{_threads(r)}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
