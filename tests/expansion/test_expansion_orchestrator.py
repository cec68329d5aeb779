"""add-language trains through train's orchestrator: an interrupted attempt continues with
--resume to the expert an uninterrupted one makes, and it runs under torchrun."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file

from lora_whisper.cli import main

COMMON = ["--batch-size", "2", "--num-workers", "0", "--no-bf16", "--no-progress", "--lr", "5e-3",
          "--warmup-steps", "0", "--similarity-utterances", "2"]


def _copy(base_run_dir, dst):
    shutil.copytree(base_run_dir, dst)
    return dst


def _experts(run):
    return [e["name"] for e in json.loads((run / "lora_whisper.json").read_text())["experts"]]


def _pt(run):
    return load_file(str(run / "adapters" / "pt" / "adapter_model.safetensors"))


def test_interrupted_add_language_resumes_to_the_same_expert(base_run_dir, corpus, tmp_path, capsys):
    args = ["add-language", "--language", "pt", "--data", str(corpus["train-pt"]), "--init", "warm",
            "--max-steps", "4", "--checkpoint-every", "2", *COMMON]
    straight = _copy(base_run_dir, tmp_path / "straight")
    assert main([*args, "--run", str(straight)]) == 0

    cut = _copy(base_run_dir, tmp_path / "cut")
    assert main([*args, "--run", str(cut), "--stop-after-steps", "3"]) == 0
    assert "continue with --resume" in capsys.readouterr().err
    assert "pt" not in _experts(cut)   # not registered until it finishes
    assert torch.load(cut / "expansion" / "pt" / "checkpoints" / "last.pt", weights_only=False)["step"] == 2
    # --resume alone: the attempt's saved settings are the base, as for train
    assert main(["add-language", "--run", str(cut), "--language", "pt", "--data", str(corpus["train-pt"]),
                 "--init", "warm", "--resume"]) == 0
    assert _experts(cut) == _experts(straight) == ["pl", "es", "it", "pt"]
    a, b = _pt(straight), _pt(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # without --resume a stale attempt is started again, not silently continued
    again = _copy(base_run_dir, tmp_path / "again")
    assert main([*args, "--run", str(again), "--stop-after-steps", "1"]) == 0
    assert main([*args, "--run", str(again)]) == 0
    assert "unfinished earlier attempt" in capsys.readouterr().err
    b = _pt(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_add_language_under_torchrun_matches_one_process(base_run_dir, corpus, tmp_path):
    args = ["add-language", "--language", "pt", "--data", str(corpus["train-pt"]), "--init", "random",
            "--max-steps", "2", "--threads", "1", *COMMON]
    two = _copy(base_run_dir, tmp_path / "two")
    one = _copy(base_run_dir, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           # "--": torchrun's own parser would read --run as an abbreviation of its --run-path
                           "-m", "lora_whisper.cli", "--", *args, "--run", str(two), "--grad-accum", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr and "frozen pl, es, it" in proc.stderr
    assert main([*args, "--run", str(one), "--grad-accum", "2"]) == 0
    a, b = _pt(two), _pt(one)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst
    assert any(float(a[k].abs().sum()) > 0 for k in a if "lora_B" in k)   # it did train
    assert _experts(two) == ["pl", "es", "it", "pt"]


def test_learned_gates_of_the_best_evaluation_survive_a_resume(base_run_dir, corpus, tmp_path):
    """The run keeps the best dev evaluation's adapters and, with them, that evaluation's
    gates, also when the attempt was interrupted and resumed in between."""
    from lora_whisper.expansion import AddLanguageConfig, add_language
    from lora_whisper.expansion.similarity import Similarity

    sim = Similarity({"pl": 0.5, "it": 0.3, "es": 0.2}, n_utterances=4, base_mass=0.1)
    train = dict(max_steps=4, eval_every=2, checkpoint_every=2, batch_size=2, num_workers=0, bf16=False,
                 progress=False, eval_max_new_tokens=3, lr=1e-2, warmup_steps=0, log_every=1)

    def run(dst, **extra):
        config = AddLanguageConfig(run=dst, language="pt", data=str(corpus["train-pt"]), dev=str(corpus["dev-pt"]),
                                   init="moe", learned_gates=True, train={**train, **extra})
        return add_language(config, similarity=sim, log=None)

    straight = run(_copy(base_run_dir, tmp_path / "straight"))
    cut = _copy(base_run_dir, tmp_path / "cut")
    assert run(cut, stop_after_steps=3).provenance == {}
    resumed = run(cut, resume=True)
    assert resumed.mixture == straight.mixture and resumed.mixture["pl"] != 0.625
    saved = json.loads((cut / "lora_whisper.json").read_text())["experts"][-1]["provenance"]["moe"]["experts"]
    assert saved == resumed.mixture
