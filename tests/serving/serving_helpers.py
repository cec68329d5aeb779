"""Helpers for the serving tests: a tiny run, test audio, a live uvicorn server."""
from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# loop_guard off: the tiny random model loops on noise, and these tests count decode passes
# (the guard is the Transcriber's, tested in tests/inference).
GREEDY = dict(temperatures=(0.0,), max_new_tokens=8, compression_ratio_threshold=None, logprob_threshold=None,
              loop_guard=False)


def make_run(backbone_dir: Path, run_dir: Path, seed: int = 0, std: float = 0.05) -> Path:
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.run import save_run
    from lora_whisper.adapters.model import inject, perturb_experts
    from lora_whisper.backbone.load import load_backbone

    bb = load_backbone(str(backbone_dir))
    bank = inject(bb.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en", "pl"], seed=seed)
    perturb_experts(bank, std, seed + 1)
    save_run(run_dir, bank, bb, {"pl": {"recipe": "add-language", "init": "moe",
                                        "moe": {"experts": {"de": 0.6, "pl": 0.4}}}})
    return run_dir


def transcriber_for(run: Path, **kw):
    from lora_whisper.inference.decoding import DecodeOptions
    from lora_whisper.inference.transcriber import load

    return load(run=str(run), options=DecodeOptions(**GREEDY), **kw)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def wav_bytes(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="WAV", subtype="FLOAT")  # float: the server sees these exact samples
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn in a thread on a free loopback port: the real HTTP stack, in-process."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
