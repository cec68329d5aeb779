"""`lora-whisper serve`: the OpenAI-compatible HTTP API and web page for a run or backbone."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lora_whisper.cli._options import (add_compute_type, add_routing, port_number, positive_float, positive_int,
                                        routing_from_args)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a run over HTTP (OpenAI-compatible API + web page)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", default=None, help="a trained run directory")
    src.add_argument("--backbone", default=None, help="a bare Whisper dir (default: embedded whisper-base)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--api-key", default=os.environ.get("LORA_WHISPER_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $LORA_WHISPER_API_KEY, else none)")
    p.add_argument("--model-name", default=None, help="model id clients send (default: the run's directory name)")
    p.add_argument("--max-upload-mb", type=positive_float, default=25.0)
    p.add_argument("--max-audio-seconds", type=positive_float, default=7200.0,
                   help="longest audio one request may carry, in seconds (default 7200): a small "
                        "compressed upload can hold hours")
    p.add_argument("--drain-seconds", type=positive_float, default=30.0,
                   help="at SIGTERM, how long requests in progress may take to finish before they are "
                        "cancelled (default 30)")
    p.add_argument("--max-batch", type=positive_int, default=8, help="requests decoded together (1 = one at a time)")
    p.add_argument("--batch-wait-ms", type=float, default=20.0,
                   help="how long the first request waits for others to join its batch")
    p.add_argument("--pad-30s", action="store_true", help="pad every clip to 30 s instead of its real length")
    p.add_argument("--vad", action="store_true",
                   help="cut uploads at speech pauses (Silero VAD) and decode their chunks as batches")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_compute_type(p)
    add_routing(p)   # the server's defaults; a request may send `languages` and `routing`
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    import torch
    import uvicorn

    from lora_whisper.errors import UserError
    from lora_whisper.inference.transcriber import load
    from lora_whisper.serving import create_app

    if args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    candidates, policy = routing_from_args(args)
    t = load(args.backbone, run=args.run, pad_30s=args.pad_30s, batch_size=args.max_batch,
             compute_type=args.compute_type, candidates=candidates, policy=policy)
    name = args.model_name or (Path(args.run).resolve().name if args.run else "whisper")
    app = create_app(t, model_id=name, api_key=args.api_key, max_upload_mb=args.max_upload_mb,
                     max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                     max_audio_seconds=args.max_audio_seconds, vad=args.vad)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"warning: serving on {args.host} without --api-key: anyone who can reach it may use it",
              file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    timeout_graceful_shutdown=args.drain_seconds)
    except OSError as exc:   # address in use, no permission for a low port
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
