"""A hostile or careless client cannot hurt the others: bounded, loopback only, tiny run.

Waits are on events with deadlines, never on timings: the long lane is held by a gate that
lets one 30 s window through per token.
"""
from __future__ import annotations

import concurrent.futures
import io
import logging
import socket
import threading
import time

import numpy as np
import pytest
import httpx
import soundfile as sf

from lora_whisper.serving import MicroBatcher, create_app
from lora_whisper.serving.access_log import ACCESS_LOG
from lora_whisper.serving.batcher import JobFailed
from serving_helpers import noise, wav_bytes

MODEL = "tiny-run"
DEADLINE = 60.0


def wait_for(cond, what: str):
    end = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def ten_minutes_in_flight(pool, server, batcher, gate):
    """A 10-minute upload whose first window has been decoded (the gate lets one through)."""
    long = pool.submit(post, server.url, flac_silence(600), "long.flac", language="de")
    gate.release()
    wait_for(lambda: batcher.long_steps >= 1, "the long upload's first window")
    return long


def flac_silence(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * 16000), np.int16), 16000, format="FLAC")
    return buf.getvalue()


def post(url, data: bytes, name="clip.wav", timeout=DEADLINE, **form):
    form.setdefault("model", MODEL)
    return httpx.post(f"{url}/v1/audio/transcriptions", files={"file": (name, data)}, data=form, timeout=timeout)


@pytest.fixture()
def gate(transcriber, monkeypatch):
    """Long-form windows (timestamp decoding) pass only with a token from the test."""
    tokens = threading.Semaphore(0)
    real = transcriber._decode

    def gated(features, languages, options, *rest, **kw):
        if options.timestamps:
            assert tokens.acquire(timeout=DEADLINE), "long lane never released"
        return real(features, languages, options, *rest, **kw)

    monkeypatch.setattr(transcriber, "_decode", gated)
    return tokens


@pytest.fixture()
def access_lines():
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    h = Keep()
    ACCESS_LOG.addHandler(h)
    yield lines
    ACCESS_LOG.removeHandler(h)


def test_nan_upload_refused_alone_and_other_requests_in_its_batch_served(transcriber, live_server, access_lines):
    server = live_server(create_app(transcriber, model_id=MODEL, batch_wait_ms=200))
    bad = noise(1.0)
    bad[500] = np.nan
    good = [noise(1.0, seed=s) for s in (1, 2, 3)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, server.url, wav_bytes(a), language="de") for a in good]
        nan = pool.submit(post, server.url, wav_bytes(bad), name="nan.wav", language="de").result()
        answers = [f.result() for f in futures]
    assert nan.status_code == 400
    err = nan.json()["error"]
    assert err["code"] == "invalid_audio" and err["message"].startswith("nan.wav: contains NaN or infinite samples")
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.json()["text"] for r in answers] == [transcriber.transcribe(a, language="de").text for a in good]
    wait_for(lambda: len(access_lines) >= 4, "an access-log line per request")
    assert sum('"POST /v1/audio/transcriptions" 400' in line for line in access_lines) == 1
    assert sum('"POST /v1/audio/transcriptions" 200' in line and "audio=1.00s" in line for line in access_lines) == 3


def test_a_failing_row_fails_only_its_own_request(transcriber, monkeypatch):
    poisoned = noise(0.7, seed=9)
    real = type(transcriber)._decode_short

    def fragile(self, job, idx, clips):
        if any(len(c) == len(poisoned) and np.array_equal(c, poisoned) for c in clips):
            raise RuntimeError("kernel failure on this row")
        return real(self, job, idx, clips)

    monkeypatch.setattr(type(transcriber), "_decode_short", fragile)
    clips = [noise(0.5, seed=1), poisoned, noise(0.6, seed=2)]
    b = MicroBatcher(transcriber, max_batch=8, wait_ms=300)
    try:
        futures = [b.submit(c, "de") for c in clips]
        concurrent.futures.wait(futures, timeout=DEADLINE)
    finally:
        b.stop()
    assert b.calls == [3]   # one batch; the bad row was isolated inside it
    assert futures[0].result().text is not None and futures[2].result().text is not None
    with pytest.raises(JobFailed, match="RuntimeError: kernel failure on this row"):
        futures[1].result()


def test_every_error_has_the_openai_shape(transcriber, live_server):
    server = live_server(create_app(transcriber, model_id=MODEL))
    no_file = httpx.post(f"{server.url}/v1/audio/transcriptions", data={"model": MODEL}, timeout=DEADLINE)
    nowhere = httpx.get(f"{server.url}/v1/nowhere", timeout=DEADLINE)
    wrong_method = httpx.get(f"{server.url}/v1/audio/transcriptions", timeout=DEADLINE)
    odd_model = post(server.url, wav_bytes(noise(0.5)), model="x'\"\n" * 40)
    for r, status in ((no_file, 400), (nowhere, 404), (wrong_method, 405), (odd_model, 404)):
        assert r.status_code == status
        assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert no_file.json()["error"]["param"] == "file"
    assert "\\n" not in odd_model.json()["error"]["message"] and len(odd_model.json()["error"]["message"]) < 200


def test_audio_seconds_limit_beside_the_byte_limit(transcriber, live_server):
    server = live_server(create_app(transcriber, model_id=MODEL, max_audio_seconds=60))
    hour = flac_silence(3600)
    assert len(hour) < 1_000_000   # an hour of silence is small: the byte limit alone lets it in
    r = post(server.url, hour, name="hour.flac")
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "audio_too_long" and "3600.0 s of audio; the limit is 60 s" in err["message"]
    assert httpx.get(f"{server.url}/health", timeout=DEADLINE).json()["max_audio_seconds"] == 60


def test_short_request_is_served_while_a_long_one_is_in_flight(transcriber, live_server, gate):
    server = live_server(create_app(transcriber, model_id=MODEL, batch_wait_ms=5))
    batcher = server.app.state.batcher
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        long = ten_minutes_in_flight(pool, server, batcher, gate)
        short = pool.submit(post, server.url, wav_bytes(noise(1.0)), language="de")
        wait_for(lambda: batcher.pending >= 2, "the short request to be queued")
        gate.release()   # the next window starts: the short request is served inside it
        assert short.result().status_code == 200
        assert not long.done() and batcher.long_steps <= 2
        for _ in range(40):
            gate.release()
        assert long.result().status_code == 200
    health = httpx.get(f"{server.url}/health", timeout=DEADLINE).json()
    assert health["pending"] == 0


def test_disconnected_client_has_its_work_cancelled(transcriber, live_server, gate, access_lines):
    server = live_server(create_app(transcriber, model_id=MODEL, batch_wait_ms=5))
    batcher = server.app.state.batcher
    jobs = []
    real_submit = batcher.submit_job
    batcher.submit_job = lambda job: jobs.append(job) or real_submit(job)
    body = flac_silence(1800)
    boundary = "hostileboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{MODEL}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"long.flac\"\r\n"
            f"Content-Type: audio/flac\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(form)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
    sock.sendall(head + form)
    gate.release()
    wait_for(lambda: batcher.long_steps >= 1, "the first window")
    sock.close()   # the client goes away with 59 windows to go
    wait_for(lambda: jobs and jobs[0].abandoned.is_set(), "the server to notice the disconnect")
    for _ in range(3):
        gate.release()
    wait_for(lambda: batcher.pending == 0, "the long job to stop")
    assert batcher.long_steps <= 3
    wait_for(lambda: any("499" in line for line in access_lines), "the access-log line of the gone client")


def test_thirty_two_identical_requests_get_one_transcript(tiny_run, live_server):
    """Default decoding (the fallback ladder, which samples on this noise) in batches of any
    composition: one transcript."""
    from lora_whisper.inference.decoding import DecodeOptions
    from lora_whisper.inference.transcriber import load

    t = load(run=str(tiny_run), options=DecodeOptions(max_new_tokens=10, loop_guard=False))
    server = live_server(create_app(t, model_id=MODEL, batch_wait_ms=20, max_batch=8))
    clip = wav_bytes(noise(2.0, seed=4))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda _: post(server.url, clip, language="de").json()["text"], range(32)))
    assert len(set(texts)) == 1
    assert len(server.app.state.batcher.batches) > 1   # it did come in batches of several sizes


def test_sigterm_drains_within_its_bound_and_logs_the_request(tiny_dir):
    """`serve --drain-seconds 1` with a 30-minute upload being decoded: SIGTERM ends the process
    within the bound (plus slack for one window and the shutdown), the cut request gets a 503
    and has its access-log line, and nothing prints a traceback."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import lora_whisper
    from serving_helpers import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(lora_whisper.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "lora_whisper.cli", "serve", "--backbone", str(tiny_dir),
                             "--port", str(port), "--drain-seconds", "1", "--threads", "1", "--model-name", MODEL],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "the server to start")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            long = pool.submit(lambda: post(url, flac_silence(1800), "long.flac", language="de"))
            wait_for(lambda: httpx.get(f"{url}/health", timeout=5).json()["pending"] >= 1, "decoding to start")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=DEADLINE)
            took = time.monotonic() - t0
            try:
                answer = long.result()
            except httpx.HTTPError:
                answer = None   # cut off: the connection closed without an answer
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert took < 1 + 15, err
    # answered, in OpenAI's shape, and logged; or cut off (then logged as 499)
    assert answer is None or (answer.status_code == 503 and answer.json()["error"]["code"] == "shutting_down")
    assert f'"POST /v1/audio/transcriptions" {answer.status_code if answer else 499}' in err, err
    assert "audio=1800.00s" in err, err
    assert "Traceback" not in err, err


def test_verbose_json_says_when_no_expert_serves_the_language(transcriber):
    from fastapi.testclient import TestClient

    with TestClient(create_app(transcriber, model_id=MODEL)) as c:
        r = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(noise(1.0)))},
                   data={"model": MODEL, "language": "fr", "response_format": "verbose_json"})
        routed = c.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(noise(1.0)))},
                        data={"model": MODEL, "language": "de", "response_format": "verbose_json"})
    assert r.json()["expert"] is None
    assert r.json()["warning"] == "no expert for language 'fr' in this run: decoded by the bare backbone"
    assert routed.json()["expert"] == "de" and "warning" not in routed.json()


def test_a_shorter_long_request_joins_the_running_one_and_finishes_first(transcriber, live_server, gate):
    """40 s sent while 10 minutes are being decoded: it joins the windows in progress and is
    answered after its own two windows, not after the 10 minutes."""
    server = live_server(create_app(transcriber, model_id=MODEL, batch_wait_ms=5))
    batcher = server.app.state.batcher
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        long = ten_minutes_in_flight(pool, server, batcher, gate)
        medium = pool.submit(post, server.url, wav_bytes(noise(40.0)), "medium.wav", language="en")
        wait_for(lambda: batcher.pending >= 2, "the 40 s request to be queued")
        for _ in range(6):
            steps = batcher.long_steps
            gate.release()
            wait_for(lambda: medium.done() or batcher.long_steps > steps, "a window step")
            if medium.done():
                break
        assert medium.result().status_code == 200 and not long.done()
        assert batcher.long_steps <= 5
        for _ in range(40):
            gate.release()
        assert long.result().status_code == 200
