"""The official `openai` client against a real uvicorn server on a free loopback port."""
from __future__ import annotations

import concurrent.futures

import openai
import pytest

from lora_whisper.serving import create_app
from serving_helpers import noise, wav_bytes

KEY = "test-key"


@pytest.fixture()
def server(transcriber, live_server):
    return live_server(create_app(transcriber, model_id="tiny-run", api_key=KEY, batch_wait_ms=200))


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture()
def clip(tmp_path):
    audio = noise(1.2, seed=3)
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(audio))
    return audio, path


def test_transcriptions_create(client, transcriber, clip):
    audio, path = clip
    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model="tiny-run", file=f, language="de")
    assert r.text == transcriber.transcribe(audio, language="de").text


def test_verbose_json_and_text_formats(client, transcriber, clip):
    audio, path = clip
    direct = transcriber.transcribe(audio, language="en")
    v = client.audio.transcriptions.create(model="whisper-1", file=path, language="en",
                                           response_format="verbose_json")
    assert v.language == "english" and v.duration == pytest.approx(1.2) and v.text == direct.text
    assert v.expert == "en"  # our extra field survives the client's model
    assert [s.text for s in v.segments] == [s.text for s in direct.segments]
    text = client.audio.transcriptions.create(model="tiny-run", file=path, language="en", response_format="text")
    assert text.strip() == direct.text
    srt = client.audio.transcriptions.create(model="tiny-run", file=path, language="en", response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> ")


def test_models_list(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-run", "tiny-run-de", "tiny-run-en", "tiny-run-pl"]
    assert client.models.retrieve("tiny-run").languages == ["de", "en", "pl"]
    assert client.models.retrieve("tiny-run-pl").language == "pl"


def test_errors_map_to_the_clients_exceptions(client, server, clip):
    _, path = clip
    with pytest.raises(openai.BadRequestError, match="valid codes"):
        client.audio.transcriptions.create(model="tiny-run", file=path, language="xx")
    with pytest.raises(openai.BadRequestError, match="not audio or corrupt"):
        client.audio.transcriptions.create(model="tiny-run", file=("bad.wav", b"garbage" * 100))
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=path)
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    assert client.audio.transcriptions.create(model="tiny-run", file=path, language="de").text is not None


def test_concurrent_clients_are_micro_batched(client, server, transcriber):
    clips = [noise(0.4 + 0.1 * i, seed=40 + i) for i in range(8)]

    def call(audio):
        return client.audio.transcriptions.create(model="tiny-run", file=("a.wav", wav_bytes(audio)), language="pl")

    with concurrent.futures.ThreadPoolExecutor(len(clips)) as pool:
        got = [r.text for r in pool.map(call, clips)]
    assert got == [transcriber.transcribe(a, language="pl").text for a in clips]
    batcher = server.app.state.batcher
    assert batcher.requests == 8 and len(batcher.batches) < 8


def test_cli_serve_subprocess(tiny_run, clip):
    """`lora-whisper serve` as users start it: a separate process, loopback, API key."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from serving_helpers import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lora_whisper.cli", "serve", "--run", str(tiny_run),
                             "--port", str(port), "--api-key", KEY, "--threads", "1", "--log-level", "warning"],
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "server exited"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list().data][0] == tiny_run.name   # then one per expert
        _, path = clip  # the CLI decodes with the default options (fallback, 224 tokens): just check the answer
        r = client.audio.transcriptions.create(model=tiny_run.name, file=path, language="en",
                                               response_format="verbose_json")
        assert isinstance(r.text, str) and r.language == "english" and r.expert == "en"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
