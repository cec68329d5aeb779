"""stream=true: server-sent events that concatenate to the non-streamed result; word
timestamps through timestamp_granularities[]=word (tiny run, TestClient)."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lora_whisper.serving import create_app
from serving_helpers import noise, wav_bytes

MODEL = "tiny-run"


@pytest.fixture()
def client(transcriber):
    with TestClient(create_app(transcriber, model_id=MODEL, max_upload_mb=10, batch_wait_ms=5)) as c:
        yield c


def post(client, audio, **form):
    form.setdefault("model", MODEL)
    return client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(audio), "audio/wav")}, data=form)


def events(r) -> list:
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.text.split("\n\n") if b]
    assert blocks[-1] == "data: [DONE]"
    return [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]


def test_stream_events_concatenate_to_the_plain_result(client):
    audio = noise(45.0, seed=9)   # two windows or more: several segments, streamed as decoded
    plain = post(client, audio, language="de", response_format="verbose_json").json()
    evs = events(post(client, audio, language="de", stream="true"))
    deltas, done = evs[:-1], evs[-1]
    assert len(deltas) >= 2 and all(e["type"] == "transcript.text.delta" for e in deltas)
    assert "".join(e["delta"] for e in deltas) == done["text"] == plain["text"]
    assert [e["segment"] for e in deltas] == plain["segments"]
    assert done["type"] == "transcript.text.done" and done["expert"] == plain["expert"] == "de"
    assert done["duration"] == pytest.approx(45.0)


def test_word_granularity_gives_words(client):
    audio = noise(3.0, seed=2)
    body = post(client, audio, language="en", response_format="verbose_json",
                **{"timestamp_granularities[]": ["word", "segment"]}).json()
    assert body["words"] and body["words"] == [w for s in body["segments"] for w in s["words"]]
    assert all(0.0 <= w["start"] <= w["end"] <= body["duration"] for w in body["words"])
    plain = post(client, audio, language="en", response_format="verbose_json").json()
    assert "words" not in plain and plain["text"] == body["text"]
    streamed = events(post(client, audio, language="en", stream="true", **{"timestamp_granularities[]": "word"}))
    assert [w for e in streamed[:-1] for w in e["segment"]["words"]] == body["words"]
    r = post(client, audio, **{"timestamp_granularities[]": "letter"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "timestamp_granularities"
