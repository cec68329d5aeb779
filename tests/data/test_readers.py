"""Each reader on a tiny fixture in its corpus's exact layout, plus layout detection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lora_whisper.data.manifest import read_manifest, write_manifest
from lora_whisper.data.readers import detect_format, open_source, read_source
from lora_whisper.data.utterance import DataError, Utterance
from lora_whisper.languages import UnknownLanguageError


def test_jsonl_manifest_roundtrip(tmp_path, tone):
    tone(tmp_path / "clips" / "a.wav", 0.5)
    tone(tmp_path / "clips" / "b.wav", 0.25)
    lines = [
        {"id": "a", "audio": "clips/a.wav", "text": "dzień dobry", "language": "pl",
         "duration": 0.5, "voice": "pl+f3", "split": "train", "snr": 20},
        {"id": "b", "audio": str(tmp_path / "clips" / "b.wav"), "text": "ciao",
         "language": "Italian"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    utts = open_source(tmp_path / "m.jsonl")
    assert [u.id for u in utts] == ["a", "b"]
    a, b = utts
    assert a.audio == str(tmp_path / "clips" / "a.wav")
    assert (a.language, a.duration, a.voice, a.split, a.extra) == ("pl", 0.5, "pl+f3", "train", {"snr": 20})
    assert b.language == "it" and b.duration is None
    assert len(a.load()) == 8000

    out = write_manifest(tmp_path / "copy" / "m.jsonl", utts)
    assert json.loads(out.read_text().splitlines()[0])["audio"] == str(tmp_path / "clips" / "a.wav")
    here = write_manifest(tmp_path / "again.jsonl", utts)
    assert json.loads(here.read_text().splitlines()[0])["audio"] == "clips/a.wav"  # relative
    assert read_manifest(here) == utts
    assert [p.name for p in (tmp_path / "copy").iterdir()] == ["m.jsonl"]  # no temp left


def test_jsonl_language_and_split_select(tmp_path, tone):
    tone(tmp_path / "a.wav")
    rows = [{"id": str(i), "audio": "a.wav", "text": "x", "language": lang, "split": split}
            for i, (lang, split) in enumerate([("pl", "train"), ("it", "train"),
                                               (None, "test"), ("pl", None)])]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert [u.id for u in open_source(tmp_path / "m.jsonl", language="pl")] == ["0", "2", "3"]
    got = open_source(tmp_path / "m.jsonl", language="polish", split="train")
    assert [(u.id, u.language, u.split) for u in got] == [("0", "pl", "train"), ("3", "pl", "train")]
    with pytest.raises(UnknownLanguageError, match="'xx'"):
        open_source(tmp_path / "m.jsonl", language="xx")


def test_jsonl_malformed_lines_name_file_and_line(tmp_path, tone):
    tone(tmp_path / "a.wav")
    good = json.dumps({"id": "a", "audio": "a.wav", "text": "hi", "language": "en"})
    (tmp_path / "m.jsonl").write_text("\n".join([
        good,
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "c", "text": "no audio", "language": "en"}),
        json.dumps({"id": "d", "audio": "a.wav", "text": "x", "language": "en", "duration": "long"}),
        good,  # duplicate id
    ]))
    with pytest.raises(DataError, match=r"m\.jsonl:2: not valid JSON"):
        read_manifest(tmp_path / "m.jsonl")
    rows = read_source(tmp_path / "m.jsonl")
    assert [u.id for u in rows.utterances] == ["a"]
    where = [b.where.rsplit(":", 1)[1] for b in rows.bad]
    assert where == ["2", "3", "4", "5", "6"]
    assert "missing field 'audio'" in rows.bad[2].problem
    assert "duplicate id 'a'" in rows.bad[4].problem
    with pytest.raises(DataError, match="5 bad row"):
        open_source(tmp_path / "m.jsonl")


@pytest.mark.parametrize("delim,name", [(",", "data.csv"), ("\t", "data.tsv"), (";", "data.csv")])
def test_csv_tsv_with_detected_delimiter(tmp_path, tone, delim, name):
    tone(tmp_path / "wavs" / "one.wav")
    tone(tmp_path / "wavs" / "two.wav")
    text = "Hello, world" if delim != "," else '"Hello, world"'
    (tmp_path / name).write_text(
        delim.join(["Path", "Sentence", "Language", "Speaker"]) + "\n"
        + delim.join(["wavs/one.wav", text, "en", "s1"]) + "\n"
        + delim.join(["wavs/two.wav", "Cześć", "pl-PL", "s2"]) + "\n")
    assert detect_format(tmp_path / name) in ("csv", "tsv")
    utts = open_source(tmp_path / name)
    assert [(u.text, u.language, u.voice) for u in utts] == [("Hello, world", "en", "s1"),
                                                             ("Cześć", "pl", "s2")]
    assert utts[0].audio == str(tmp_path / "wavs" / "one.wav")


def test_csv_without_text_column_is_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("file,words\nx.wav,hi\n")
    with pytest.raises(DataError, match="no text column"):
        open_source(tmp_path / "d.csv")


def make_common_voice(root: Path, tone) -> Path:
    lang_dir = root / "cv-corpus-17.0-2024-03-15" / "pl"
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment\n"
    for split, clips in (("train", ["common_voice_pl_1.mp3", "common_voice_pl_2.mp3"]),
                         ("dev", ["common_voice_pl_3.mp3"]), ("test", ["common_voice_pl_4.mp3"])):
        rows = [f"c{i}\t{c}\tsid\tZdanie \"numer\" {i}.\t\t2\t0\tthirties\tmale_masculine\t\t\tpl\t\n"
                for i, c in enumerate(clips)]
        (lang_dir / f"{split}.tsv").parent.mkdir(parents=True, exist_ok=True)
        (lang_dir / f"{split}.tsv").write_text(header + "".join(rows))
        for c in clips:
            tone(lang_dir / "clips" / c, 0.4, sr=48000, fmt="MP3")
    (lang_dir / "validated.tsv").write_text(header)
    (lang_dir / "clip_durations.tsv").write_text("clip\tduration[ms]\ncommon_voice_pl_1.mp3\t400\n")
    return lang_dir


def test_common_voice(tmp_path, tone):
    lang_dir = make_common_voice(tmp_path, tone)
    assert detect_format(lang_dir) == "cv"
    utts = open_source(lang_dir)
    assert [(u.id, u.split) for u in utts] == [("common_voice_pl_1", "train"), ("common_voice_pl_2", "train"),
                                              ("common_voice_pl_3", "dev"), ("common_voice_pl_4", "test")]
    u = utts[0]
    assert (u.language, u.voice, u.duration, u.text) == ("pl", "c0", 0.4, 'Zdanie "numer" 0.')
    assert abs(len(u.load()) - 6400) < 1500
    assert [u.id for u in open_source(lang_dir, split="validation")] == ["common_voice_pl_3"]
    assert [u.split for u in open_source(f"cv:{lang_dir / 'test.tsv'}")] == ["test"]
    assert detect_format(lang_dir / "train.tsv") == "cv"


def test_common_voice_language_from_folder_name(tmp_path, tone):
    lang_dir = make_common_voice(tmp_path, tone)
    for tsv in lang_dir.glob("*.tsv"):  # older releases have no locale column
        lines = [ln.rsplit("\t", 2)[0] for ln in tsv.read_text().splitlines()]
        tsv.write_text("\n".join(lines) + "\n")
    assert {u.language for u in open_source(lang_dir)} == {"pl"}
    assert {u.language for u in open_source(lang_dir, language="it")} == {"it"}


@pytest.mark.parametrize("ext,fmt,subtype", [(".flac", "FLAC", None), (".opus", "OGG", "OPUS")])
def test_mls(tmp_path, tone, ext, fmt, subtype):
    root = tmp_path / ("mls_polish" + ("_opus" if ext == ".opus" else ""))
    for split, keys in (("train", ["10_20_000001", "10_20_000002"]), ("test", ["11_30_000005"])):
        d = root / split
        d.mkdir(parents=True)
        (d / "transcripts.txt").write_text("".join(f"{k}\ttekst {k}\n" for k in keys))
        (d / "segments.txt").write_text("".join(f"{k}\thttp://x\t1.5\t2.25\n" for k in keys))
        for k in keys:
            spk, book, _ = k.split("_")
            tone(d / "audio" / spk / book / f"{k}{ext}", 0.3, fmt=fmt, subtype=subtype)
    assert detect_format(root) == "mls"
    utts = open_source(root)
    assert [(u.id, u.voice, u.split, u.language) for u in utts] == [
        ("10_20_000001", "10", "train", "pl"), ("10_20_000002", "10", "train", "pl"),
        ("11_30_000005", "11", "test", "pl")]
    assert utts[0].duration == pytest.approx(0.75)
    assert utts[0].audio.endswith(f"audio/10/20/10_20_000001{ext}")
    assert len(utts[2].load()) > 4000
    assert [u.id for u in open_source(f"mls:{root}", split="test")] == ["11_30_000005"]
    assert len(open_source(root / "train")) == 2  # a split folder on its own


def test_fleurs(tmp_path, tone):
    root = tmp_path / "pl_pl"
    rows = {"train": [("1", "111.wav", "Ala ma kota.", "ala ma kota", "a l a", "4800", "FEMALE"),
                      ("1", "112.wav", "Ala ma kota.", "ala ma kota", "a l a", "8000", "MALE")],
            "dev": [("7", "700.wav", "Dzień dobry.", "dzień dobry", "d", "3200", "MALE")]}
    for split, rs in rows.items():
        root.mkdir(exist_ok=True)
        (root / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rs))
        for r in rs:
            tone(root / "audio" / split / r[1], int(r[5]) / 16000)
    assert detect_format(root) == "fleurs"
    utts = open_source(root)
    assert [(u.id, u.split, u.language) for u in utts] == [("111", "train", "pl"), ("112", "train", "pl"),
                                                          ("700", "dev", "pl")]
    assert utts[1].duration == 0.5 and utts[1].text == "Ala ma kota."
    assert utts[1].extra["normalized_text"] == "ala ma kota"
    assert [u.id for u in open_source(root, split="validation")] == ["700"]
    assert detect_format(root / "dev.tsv") == "fleurs"


def test_fleurs_chinese_folder_name(tmp_path, tone):
    root = tmp_path / "cmn_hans_cn"
    root.mkdir()
    (root / "test.tsv").write_text("3\t3.wav\t你好\t你好\tn i\t4800\tMALE\n")
    tone(root / "audio" / "test" / "3.wav")
    assert open_source(root)[0].language == "zh"


def test_folder_of_txt(tmp_path, tone):
    root = tmp_path / "recordings"
    tone(root / "pl" / "a.wav")
    (root / "pl" / "a.txt").write_text("pierwsze\nzdanie\n")
    tone(root / "it" / "b.flac", fmt="FLAC")
    (root / "it" / "b.txt").write_text("seconda frase")
    tone(root / "misc" / "c.wav")
    (root / "misc" / "c.txt").write_text("no language here")
    assert detect_format(root) == "folder"
    rows = read_source(root)
    assert [(u.id, u.language, u.text) for u in rows.utterances] == [
        ("it/b", "it", "seconda frase"), ("pl/a", "pl", "pierwsze zdanie")]
    assert len(rows.bad) == 1 and "no language" in rows.bad[0].problem
    assert {u.language for u in open_source(root, language="de")} == {"de"}
    tone(root / "pl" / "orphan.wav")
    assert any("no transcript" in b.problem for b in read_source(root).bad)


def test_forced_format_and_undetectable(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the layout"):
        open_source(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file"):
        open_source(tmp_path / "missing.jsonl")


def test_hf_save_to_disk(tmp_path, tone, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("LORA_WHISPER_CACHE", str(tmp_path / "cache"))  # extracted audio
    wavs = [tone(tmp_path / f"src{i}.wav", 0.2 * (i + 1)) for i in range(3)]
    ds = datasets.Dataset.from_dict({
        "audio": [str(w) for w in wavs],
        "sentence": ["jeden", "dwa", "tre"],
        "locale": ["pl", "pl", "it"],
        "client_id": ["a", "b", "c"],
    }).cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"train": ds, "validation": ds.select([2])}).save_to_disk(str(tmp_path / "hf"))
    for w in wavs:
        w.unlink()  # the audio must come from the arrow files, not the original paths
    assert detect_format(tmp_path / "hf") == "hf"
    utts = open_source(tmp_path / "hf")
    assert [(u.text, u.language, u.split, u.voice) for u in utts] == [
        ("jeden", "pl", "train", "a"), ("dwa", "pl", "train", "b"), ("tre", "it", "train", "c"),
        ("tre", "it", "dev", "c")]
    assert len(utts[1].load()) == 6400
    assert [u.text for u in open_source(tmp_path / "hf", split="dev")] == ["tre"]
    assert [u.text for u in open_source(f"hf:{tmp_path / 'hf'}", language="pl")] == ["jeden", "dwa"]


def test_utterance_is_frozen_and_hashable():
    u = Utterance("a", "/x.wav", "t", "pl", extra={"k": 1})
    with pytest.raises(AttributeError):
        u.text = "other"  # type: ignore[misc]
    assert u == Utterance("a", "/x.wav", "t", "pl") and hash(u) == hash(Utterance("a", "/x.wav", "t", "pl"))
    assert u.speaker is None
