"""Every endpoint and error code, through FastAPI's TestClient on a tiny run."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lora_whisper.serving import create_app
from serving_helpers import noise, wav_bytes

MODEL = "tiny-run"


@pytest.fixture()
def client(transcriber):
    with TestClient(create_app(transcriber, model_id=MODEL, max_upload_mb=0.25, batch_wait_ms=5)) as c:
        yield c


def post(client, data: bytes = None, name: str = "clip.wav", headers=None, **form):
    form.setdefault("model", MODEL)
    files = {"file": (name, data if data is not None else wav_bytes(noise(1.0)), "audio/wav")}
    return client.post("/v1/audio/transcriptions", files=files, data=form, headers=headers or {})


def assert_openai_error(r, status: int, param=None, contains: str = ""):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert err["param"] == param
    assert contains in err["message"]
    return err


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == MODEL
    assert body["languages"] == ["de", "en", "pl"] and body["auth"] is False


def test_models_lists_experts_with_provenance(client):
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == [MODEL, f"{MODEL}-de", f"{MODEL}-en", f"{MODEL}-pl"]  # one per expert
    card = data[0]
    assert card["object"] == "model" and card["languages"] == ["de", "en", "pl"]
    experts = {e["name"]: e for e in card["experts"]}
    assert experts["pl"]["mixture"] == {"de": 0.6, "pl": 0.4}
    assert experts["pl"]["provenance"]["init"] == "moe" and "created" in experts["de"]["provenance"]
    assert experts["de"]["mixture"] is None and experts["de"]["parameters"] > 0
    assert card["lora"]["r"] == 4 and len(card["backbone"]["fingerprint"]) == 64
    assert "ja" in card["backbone_languages"]
    assert client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert_openai_error(client.get("/v1/models/gpt-4"), 404, "model")


def test_json_matches_the_transcriber(client, transcriber):
    audio = noise(1.3, seed=4)
    r = post(client, wav_bytes(audio), language="de")
    assert r.status_code == 200, r.text
    assert r.json() == {"text": transcriber.transcribe(audio, language="de").text}


def test_verbose_json_has_language_duration_segments_expert(client, transcriber):
    audio = noise(2.0, seed=5)
    body = post(client, wav_bytes(audio), language="pl", response_format="verbose_json").json()
    direct = transcriber.transcribe(audio, language="pl")
    assert body["language"] == "polish" and body["language_code"] == "pl"
    assert body["expert"] == direct.expert == "de+pl" and body["duration"] == pytest.approx(2.0)
    assert body["mixture"] == {"de": 0.6, "pl": 0.4}
    assert body["text"] == direct.text and body["model"] == MODEL
    assert [s["text"] for s in body["segments"]] == [s.text for s in direct.segments]
    assert all({"id", "start", "end", "text", "seek"} <= set(s) for s in body["segments"])


def test_auto_language_reports_the_detected_one(client, transcriber):
    audio = noise(1.0, seed=6)
    body = post(client, wav_bytes(audio), response_format="verbose_json").json()
    direct = transcriber.transcribe(audio, language="auto")
    assert body["language_code"] == direct.language and body["expert"] == direct.expert
    assert body["language_probability"] == pytest.approx(direct.language_probability, abs=1e-6)
    assert post(client, language="auto").status_code == 200


@pytest.mark.parametrize("fmt, start", [("text", ""), ("srt", "1\n00:00:00,000 --> 00:00:01,000"),
                                        ("vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.000")])
def test_text_formats(client, transcriber, fmt, start):
    audio = noise(1.0)
    r = post(client, wav_bytes(audio), language="en", response_format=fmt)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/")
    text = transcriber.transcribe(audio, language="en").text
    assert r.text.startswith(start) and text in r.text


def test_model_alias_whisper_1_is_accepted(client):
    assert post(client, model="whisper-1", language="de").status_code == 200


def test_oversized_upload_is_413(client):
    big = wav_bytes(noise(6.0))  # ~384 kB of float wav: over the 0.25 MB limit, under limit + form slack
    err = assert_openai_error(post(client, big, language="de"), 413, "file", "limit is 0.25 MB")
    assert err["code"] == "file_too_large"
    huge = wav_bytes(noise(20.0))  # over the body limit too: refused before the form is parsed
    r = post(client, huge, language="de")
    assert r.status_code == 413 and "error" in r.json()


def test_undecodable_audio_is_400_with_the_decoders_reason(client):
    err = assert_openai_error(post(client, b"this is not audio at all" * 20, name="notes.wav"), 400, "file", "notes.wav")
    assert err["code"] == "invalid_audio" and "not audio or corrupt" in err["message"]
    assert_openai_error(post(client, b"", name="empty.wav"), 400, "file", "empty")


def test_unknown_language_is_400_listing_valid_codes(client):
    err = assert_openai_error(post(client, language="xx"), 400, "language", "'xx'")
    assert "valid codes:" in err["message"] and "de" in err["message"].split("valid codes:")[1]


def test_bad_options(client):
    assert_openai_error(post(client, response_format="mp3"), 400, "response_format")
    assert_openai_error(post(client, temperature="1.5"), 400, "temperature")
    assert_openai_error(post(client, model="gpt-4o"), 404, "model", "tiny-run")


def test_malformed_form_is_400_in_openai_shape_and_server_keeps_serving(client):
    assert_openai_error(client.post("/v1/audio/transcriptions", data={"model": MODEL}), 400, "file",
                        "missing required field 'file'")
    r = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(noise(0.5)))})
    assert_openai_error(r, 400, "model", "missing required field 'model'")
    assert_openai_error(post(client, temperature="warm"), 400, "temperature", "must be a number, got 'warm'")
    assert post(client, language="de").status_code == 200


def test_worker_failure_is_500_then_recovers(client, transcriber, monkeypatch):
    real = transcriber.transcribe
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*a, **kw)

    monkeypatch.setattr(transcriber, "transcribe", flaky)
    err = assert_openai_error(post(client, language="de"), 500, None, "transcription failed (logged on the server)")
    assert "RuntimeError" not in err["message"]   # no Python names or reprs in messages
    assert post(client, language="de").status_code == 200


def test_api_key(transcriber):
    app = create_app(transcriber, model_id=MODEL, api_key="s3cret")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200 and c.get("/health").json()["auth"] is True
        assert c.get("/").status_code == 200  # the page is public; it asks for the key
        r = c.get("/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert_openai_error(post(c, language="de"), 401)
        assert post(c, language="de", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert 'id="transcript"' in r.text and "/static/app.js" in r.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "MediaRecorder" in js.text and "verbose_json" in js.text


def test_bare_backbone_server(tiny):
    from lora_whisper.inference.transcriber import Transcriber

    with TestClient(create_app(Transcriber(tiny), model_id="bare")) as c:
        card = c.get("/v1/models").json()["data"][0]
        assert card["languages"] == [] and card["lora"] is None
        body = post(c, model="bare", language="de", response_format="verbose_json").json()
        assert body["expert"] is None and body["mixture"] is None and body["language_code"] == "de"


def test_chunked_oversized_upload_is_413(client):
    import httpx

    req = httpx.Request("POST", "http://x/v1/audio/transcriptions", data={"model": MODEL},
                        files={"file": ("a.wav", wav_bytes(noise(20.0)))})
    body = req.read()
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: chunked
    r = client.post("/v1/audio/transcriptions", content=chunks, headers={"content-type": req.headers["content-type"]})
    assert_openai_error(r, 413, "file", "limit is 0.25 MB")
    assert post(client, language="de").status_code == 200


def test_forced_language_without_an_expert_uses_the_bare_backbone(client, tiny):
    from lora_whisper.inference.decoding import DecodeOptions
    from lora_whisper.inference.transcriber import Transcriber
    from serving_helpers import GREEDY

    audio = noise(1.0, seed=9)
    body = post(client, wav_bytes(audio), language="ja", response_format="verbose_json").json()
    assert body["expert"] is None and body["language_code"] == "ja"
    assert body["text"] == Transcriber(tiny, options=DecodeOptions(**GREEDY)).transcribe(audio, language="ja").text


def test_long_upload_is_transcribed_in_timed_windows(transcriber):
    """A 45 s upload goes through timestamp seeking: segments from more than one window,
    the same as the Python API gives."""
    audio = noise(45.0, seed=6)
    with TestClient(create_app(transcriber, model_id=MODEL, batch_wait_ms=5)) as c:
        body = post(c, wav_bytes(audio), language="de", response_format="verbose_json").json()
    direct = transcriber.transcribe(audio, language="de")
    assert [(s["start"], s["end"], s["text"]) for s in body["segments"]] == [(g.start, g.end, g.text) for g in direct.segments]
    assert body["duration"] == pytest.approx(45.0) and max(s["start"] for s in body["segments"]) >= 29.0
