"""End-to-end builds on given sentences (no apt): splits, determinism, resume, TTS paths."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lora_whisper.corpus import build_corpus
from lora_whisper.corpus import tts
from lora_whisper.corpus.voices import VOICE_SPLITS, voices_for
from lora_whisper.errors import UserError

PL = [
    "Możesz wstawić kopię wykresu do dokumentu.",
    "Otwórz dokument tekstowy, do którego chcesz wstawić wykres.",
    "Przeciągnij wykres z arkusza kalkulacyjnego.",
    "Kliknij dwukrotnie obszar wykresu, aby go edytować.",
    "Wybierz polecenie z menu kontekstowego.",
    "Zapisz plik przed zamknięciem programu.",
    "Ustaw marginesy strony w oknie dialogowym.",
    "Zaznacz tekst, który chcesz sformatować.",
]
ZH = [
    "删除定义的打印区域。",
    "根据当前代码表将数字转换成字符。",
    "选择要插入的备注类型，即脚注或尾注。",
    "输入超链接的名称。",
    "从列表中选择要删除的模块或对话框。",
    "单击此处可以关闭当前窗口。",
    "在文本文档中插入图表。",
]
TEXTS = {"pl": PL, "zh": ZH}
KW = dict(per_language=4, dev_per_language=1, test_per_language=1, texts=TEXTS,
          progress=False)


def manifests(out: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text("utf-8").splitlines()]
            for s in ("train", "dev", "test")}


def wav_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.wav"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus-a")
    summary = build_corpus(out, ["pl", "zh"], seed=5, jobs=2, **KW)
    return out, summary


def test_layout_and_manifest_fields(built):
    out, summary = built
    m = manifests(out)
    assert [len(m[s]) for s in ("train", "dev", "test")] == [8, 2, 2]
    assert summary["utterances"] == 12 and summary["missing"] == 0
    for split, rows in m.items():
        for row in rows:
            assert set(row) == {"id", "audio", "text", "language", "duration", "voice", "split"}
            assert row["split"] == split
            assert row["audio"] == f"audio/{row['language']}/{split}/{row['id']}.wav"
            data, sr = sf.read(out / row["audio"], dtype="int16")
            info = sf.info(str(out / row["audio"]))
            assert sr == 16000 and data.ndim == 1 and info.subtype == "PCM_16"
            assert row["duration"] == pytest.approx(len(data) / sr, abs=1e-3)
            assert 0.5 < row["duration"] < 15
    params = json.loads((out / "corpus.json").read_text())
    assert params["seed"] == 5 and params["complete"] is True
    assert params["text"]["pl"]["source"] == "given"


def test_splits_share_no_sentence_and_no_voice(built):
    out, _ = built
    m = manifests(out)
    texts = {s: {r["text"] for r in rows} for s, rows in m.items()}
    voices = {s: {r["voice"] for r in rows} for s, rows in m.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    assert not voices["train"] & (voices["dev"] | voices["test"])
    assert not voices["dev"] & voices["test"]
    allowed = {s: {v.name for v in voices_for(s, ["espeak"])} for s in m}
    assert all(voices[s] <= allowed[s] for s in m)


def test_voice_table_is_disjoint():
    seen = {}
    for table in VOICE_SPLITS.values():
        for split, vs in table.items():
            for v in vs:
                assert seen.setdefault(v, split) == split


def test_same_seed_same_bytes_whatever_the_jobs(built, tmp_path):
    out, _ = built
    build_corpus(tmp_path, ["pl", "zh"], seed=5, jobs=1, **KW)
    assert manifests(tmp_path) == manifests(out)
    a, b = wav_bytes(out), wav_bytes(tmp_path)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_resume_rebuilds_only_missing_files(built, tmp_path):
    import shutil

    out, _ = built
    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    victims = sorted(copy.rglob("*.wav"))[::3]
    for v in victims:
        v.unlink()
    (copy / "train.jsonl").unlink()
    (victims[0].parent / ".x.wav.123.tmp").write_bytes(b"partial")  # a killed worker's
    summary = build_corpus(copy, ["pl", "zh"], seed=5, jobs=1, **KW)
    assert summary["synthesized"] == len(victims)
    assert summary["reused"] == 12 - len(victims)
    assert wav_bytes(copy) == wav_bytes(out)
    assert manifests(copy) == manifests(out)
    assert not list(copy.rglob("*.tmp"))


def test_other_seed_other_corpus_and_guard(built, tmp_path):
    out, _ = built
    with pytest.raises(UserError, match="seed"):
        build_corpus(out, ["pl", "zh"], seed=6, jobs=1, **KW)


def test_not_enough_sentences():
    with pytest.raises(UserError, match="'zh' has 7 distinct sentences"):
        build_corpus("/nonexistent-never-written", ["zh"], 10, texts=TEXTS, progress=False)


def test_pyopenjtalk_is_train_only_and_needs_espeak_for_held_out(tmp_path):
    with pytest.raises(UserError, match="no dev voice"):
        build_corpus(tmp_path, ["ja"], 1, dev_per_language=1, test_per_language=1,
                     texts={"ja": ["すべての内容を更新します。"] * 1 + ["表示されます。", "設定されます。"]},
                     engines=("pyopenjtalk",), progress=False)


def test_zh_goes_through_tone_digit_pinyin():
    p = tts.pinyin("选择要插入的备注类型，即脚注或尾注。")
    assert p.startswith("xuan3 ze2 yao4 cha1 ru4") and "," in p and "。" not in p
    engine = tts.get_engine("espeak")
    assert "cmn-latn-pinyin+m1" in engine.command("zh", "m1", {"speed": 150, "pitch": 50, "gap": 0})
    audio = engine.synthesize("删除定义的打印区域。", "zh", "m1", {"speed": 160, "pitch": 50, "gap": 0})
    assert audio.dtype == np.float32 and len(audio) > 16000 and np.abs(audio).max() > 0.1


def test_ja_kana_and_pyopenjtalk():
    pytest.importorskip("pyopenjtalk")
    assert tts.kana("今日は良い天気です。").startswith("キョーワ")
    params = {"speed": 150, "pitch": 50, "gap": 0}
    a = tts.get_engine("espeak").synthesize("すべての内容を更新します。", "ja", "f2", params)
    b = tts.get_engine("pyopenjtalk").synthesize(
        "すべての内容を更新します。", "ja", "mei", {"speed": 1.0, "half_tone": 0.0})
    for x in (a, b):
        assert x.dtype == np.float32 and len(x) > 8000 and np.abs(x).max() > 0.05
    again = tts.get_engine("pyopenjtalk").synthesize(
        "すべての内容を更新します。", "ja", "mei", {"speed": 1.0, "half_tone": 0.0})
    assert np.array_equal(b, again)


def test_one_build_per_directory(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    with open(tmp_path / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="another corpus build"):
            build_corpus(tmp_path, ["pl"], 1, dev_per_language=1, test_per_language=1,
                         texts=TEXTS, progress=False)


def test_cli_build_from_cached_text(tmp_path, monkeypatch):
    """The CLI path reads the per-language sentence cache, so no apt here."""
    from lora_whisper.cli import main
    from lora_whisper.corpus.text_sources import cache_path

    monkeypatch.setenv("LORA_WHISPER_CACHE", str(tmp_path / "cache"))
    cache_path("pl").write_text("".join(s + "\n" for s in PL), encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["corpus", "build", "--languages", "pl", "--per-language", "2",
               "--dev-per-language", "1", "--test-per-language", "1", "--out", str(out),
               "--jobs", "1", "--quiet", "--no-augment"])
    assert rc == 0
    assert [len(v) for v in manifests(out).values()] == [2, 1, 1]
