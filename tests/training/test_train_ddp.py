"""`torchrun --nproc_per_node 2` (gloo, CPU) ends with the adapters of one process that
accumulates the same two micro-batches per step."""
from __future__ import annotations

import os
import subprocess
import sys


from lora_whisper.cli import main


def test_two_processes_match_one_with_the_same_global_batch(config_for, adapters_of, tmp_path):
    common = dict(max_steps=3, batch_size=2, eval_every=3, checkpoint_every=3, lr=5e-3, lora_dropout=0.0)
    config_for(tmp_path / "ddp", grad_accum=1, **common).save(tmp_path / "ddp.toml")
    config_for(tmp_path / "one", grad_accum=2, **common).save(tmp_path / "one.toml")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "lora_whisper.cli", "train", "--config", str(tmp_path / "ddp.toml"),
                           "--threads", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    assert main(["train", "--config", str(tmp_path / "one.toml"), "--threads", "1"]) == 0

    for sub in ("final", "."):
        a, b = adapters_of(tmp_path / "ddp" / sub), adapters_of(tmp_path / "one" / sub)
        assert a.keys() == b.keys() and a
        worst = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert worst < 1e-5, worst
        assert any(float(a[k].abs().sum()) > 0 for k in a if "lora_B" in k)  # it did train
