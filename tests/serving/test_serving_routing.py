"""The server speaks the routing: `model=<model>-<lang>` names an expert, /v1/models lists them,
`languages` restricts detection, `routing` picks hard/soft/nbest per request."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lora_whisper.serving import create_app
from serving_helpers import noise, wav_bytes

MODEL = "tiny-run"


@pytest.fixture()
def client(transcriber):
    with TestClient(create_app(transcriber, model_id=MODEL, batch_wait_ms=5)) as c:
        yield c


def post(client, audio, **form):
    form.setdefault("model", MODEL)
    return client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(audio), "audio/wav")},
                       data=form)


def test_models_lists_one_model_per_expert(client):
    data = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(data) == {MODEL, f"{MODEL}-de", f"{MODEL}-en", f"{MODEL}-pl"}
    pl = client.get(f"/v1/models/{MODEL}-pl").json()
    assert pl["parent"] == MODEL and pl["language"] == "pl" and pl["mixture"] == {"de": 0.6, "pl": 0.4}


def test_model_naming_an_expert_routes_to_it(client, transcriber):
    audio = noise(1.5, seed=3)
    body = post(client, audio, model=f"{MODEL}-en", response_format="verbose_json").json()
    direct = transcriber.transcribe(audio, language="en")
    assert body["language_code"] == "en" and body["expert"] == "en" and body["text"] == direct.text
    assert body["language_probs"] is None            # given, not detected
    r = post(client, audio, model=f"{MODEL}-en", language="de")
    assert r.status_code == 400 and r.json()["error"]["param"] == "language"
    assert post(client, audio, model=f"{MODEL}-xx").status_code == 404


def test_languages_field_restricts_detection(client, transcriber):
    audio = noise(1.5, seed=4)
    body = post(client, audio, languages="pl,en", response_format="verbose_json").json()
    direct = transcriber.transcribe(audio, candidates="pl,en")
    assert set(body["language_probs"]) == {"pl", "en"} and body["language_code"] == direct.language
    assert body["text"] == direct.text
    default = post(client, audio, response_format="verbose_json").json()
    assert set(default["language_probs"]) == {"de", "en", "pl"}     # the run's experts
    everything = post(client, audio, languages="all", response_format="verbose_json").json()
    assert len(everything["language_probs"]) == len(transcriber.vocab.languages)
    bad = post(client, audio, languages="en,xx")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "languages"


def test_routing_field(client, transcriber):
    audio = noise(1.5, seed=5)
    transcriber.policy = type(transcriber.policy)(threshold=1.0)   # every detection counts as unsure
    for mode in ("soft", "nbest"):
        body = post(client, audio, routing=mode, response_format="verbose_json").json()
        direct = transcriber.transcribe(audio, routing=mode)
        assert body["routing"] == direct.routing == mode and body["text"] == direct.text
        assert body["expert"] == direct.expert
    assert post(client, audio, routing="magic").status_code == 400
