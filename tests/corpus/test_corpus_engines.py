"""Corpora spoken by several engines: with `held_out_engine="auto"` a language that has a
second engine is tested only on an engine that no training or dev clip used; a language
with one engine keeps held-out voices of it. The Debian engines (mbrola, rhvoice, pico,
festival) are optional: where a package is absent the engine does not offer the language,
and the corpus falls back as it says."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lora_whisper.corpus import build_corpus
from lora_whisper.corpus import tts

PL = ["Możesz wstawić kopię wykresu do dokumentu.", "Otwórz dokument tekstowy, do którego chcesz.",
      "Przeciągnij wykres z arkusza kalkulacyjnego.", "Kliknij dwukrotnie obszar wykresu, aby go edytować.",
      "Wybierz polecenie z menu kontekstowego.", "Zapisz plik przed zamknięciem programu.",
      "Ustaw marginesy strony w oknie dialogowym.", "Zaznacz tekst, który chcesz sformatować."]
DA = ["Børnene spillede fodbold i haven.", "Vi skal købe mælk og æg i morgen.", "Hun læser en bog hver uge.",
      "Toget kører fra stationen klokken tolv.", "Det regner meget i november.", "Han drikker kaffe om morgenen."]


def test_engine_held_out_corpus(tmp_path):
    engines = tts.available_engines(["espeak", "mbrola", "rhvoice"])
    out = tmp_path / "c"
    build_corpus(out, ["pl", "da"], per_language=3, dev_per_language=1, test_per_language=2,
                 texts={"pl": PL, "da": DA}, engines=engines, held_out_engine="auto", jobs=2, progress=False)
    meta = json.loads((out / "corpus.json").read_text())
    rows = {s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "dev", "test")}

    def engines_of(split, lang):
        return {r["voice"].split(":")[0] for r in rows[split] if r["language"] == lang}

    # Danish has espeak-ng alone: voice-held-out test, as before
    assert meta["test_engine"]["da"] is None and engines_of("test", "da") == {"espeak"}
    assert not {r["voice"] for r in rows["test"] if r["language"] == "da"} & \
        {r["voice"] for r in rows["train"] if r["language"] == "da"}
    held = meta["test_engine"]["pl"]
    if len(tts.engines_for("pl", engines)) < 2:
        assert held is None   # the machine has no second Polish engine
        return
    assert held in ("rhvoice", "mbrola")
    assert engines_of("test", "pl") == {held}
    assert held not in engines_of("train", "pl") | engines_of("dev", "pl")
    assert meta["train_engines"]["pl"] == [e for e in tts.engines_for("pl", engines) if e != held]
    for r in rows["test"]:
        import soundfile as sf

        a, sr = sf.read(out / r["audio"])
        assert sr == 16000 and len(a) > 0.3 * sr and np.abs(a).max() > 1e-3


@pytest.mark.parametrize("engine, lang, text", [
    ("mbrola", "it", "Buongiorno, come stai oggi?"), ("rhvoice", "pl", "Dzień dobry, jak się masz?"),
    ("pico", "it", "Buongiorno, come stai oggi?"), ("festival", "it", "Il caffè è già pronto."),
])
def test_each_debian_engine_speaks_or_says_it_is_absent(engine, lang, text):
    from lora_whisper.errors import UserError

    e = tts.get_engine(engine)
    if lang not in e.languages():
        with pytest.raises(UserError, match=engine if engine != "mbrola" else "MBROLA"):
            e.check(lang)
        return
    voice = e.voices(lang)[0]
    a = e.synthesize(text, lang, voice, e.draw_params(np.random.default_rng(0)))
    assert a.dtype == np.float32 and 0.5 * 16000 < len(a) < 8 * 16000 and np.abs(a).max() > 1e-2


def test_held_out_choice_per_language():
    assert tts.held_out_engine_for("da", ["espeak"]) is None
    assert tts.held_out_engine_for("cy", tts.available_engines()) is None   # no second Welsh engine anywhere
