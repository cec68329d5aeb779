"""Extractors on tiny hand-made files: no network, no apt."""
from __future__ import annotations

import struct
import zipfile

import pytest

from lora_whisper.corpus import extractors as ex
from lora_whisper.corpus import text_sources as ts
from lora_whisper.errors import UserError


def make_mo(messages: dict[str, str]) -> bytes:
    """What `msgfmt` writes (little-endian, no hash table)."""
    items = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **messages}.items())
    ids = [k.encode() for k, _ in items]
    strs = [v.encode() for _, v in items]
    n = len(items)
    orig_off, trans_off = 28, 28 + 8 * n
    data_off = trans_off + 8 * n
    table_o, table_t, blob = [], [], b""
    for s in ids:
        table_o.append((len(s), data_off + len(blob)))
        blob += s + b"\0"
    for s in strs:
        table_t.append((len(s), data_off + len(blob)))
        blob += s + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, orig_off, trans_off, 0, 0)
    return (head + b"".join(struct.pack("<2I", *t) for t in table_o)
            + b"".join(struct.pack("<2I", *t) for t in table_t) + blob)


HELP_HTML = """<html><body><header><p>Pomoc LibreOffice 7.4 menu</p></header>
<div id="DisplayArea">
<h1>Wstawianie wykresu</h1>
<p id="par_1" class="paragraph" dir="auto">Możesz wstawić kopię wykresu, która nie jest
aktualizowana po modyfikacji danych. Aby edytować dane wykresu, kliknij
<span class="emph">dwukrotnie</span> na obszar wykresu.</p>
<p class="embedded"><a href="x.html">Wstawianie grafiki z pliku do dokumentu tekstowego</a></p>
<p class="listitem">Otwórz dokument tekstowy, do kt&oacute;rego chcesz wstawić wykres.</p>
</div>
<footer><p>This page is: /text/swriter/guide/insert_graphic_fromchart.xhp</p></footer>
</body></html>"""

HELP_XHP = """<?xml version="1.0" encoding="UTF-8"?>
<helpdocument version="1.0"><body>
<paragraph role="paragraph" id="par_2">Przeciągnij wykres z arkusza kalkulacyjnego do
dokumentu tekstowego.</paragraph>
</body></helpdocument>"""


def test_help_paragraphs_html():
    paras = ex.help_paragraphs(HELP_HTML)
    assert len(paras) == 2  # the link list (class embedded), header and footer are skipped
    assert "dwukrotnie" in paras[0] and "<span" not in paras[0]
    assert "którego" in paras[1]  # entities decoded


def test_platform_alternatives_keep_the_default():
    html_ = (
        '<div id="DisplayArea"><p class="paragraph">Aby ją wyłączyć, wybierz '
        '<span class="switchinline"><span hidden="true" id="MACtext_1" class="MAC">'
        '<span class="emph">LibreOffice – Preferencje</span></span>'
        '<span hidden="true" id="defaulttext_1"><span class="emph">Narzędzia – Opcje</span>'
        "</span></span> i kartę Bezpieczeństwo.</p></div>"
    )
    assert ex.help_paragraphs(html_) == [
        "Aby ją wyłączyć, wybierz Narzędzia – Opcje i kartę Bezpieczeństwo."
    ]
    xhp = ('<paragraph role="paragraph">Naciśnij <switchinline select="sys"><caseinline '
           'select="MAC">Komenda</caseinline><defaultinline>Ctrl</defaultinline>'
           "</switchinline> teraz.</paragraph>")
    assert ex.help_paragraphs(xhp) == ["Naciśnij Ctrl teraz."]


def test_help_tree_to_sentences(tmp_path):
    page = tmp_path / "usr/share/libreoffice/help/pl/text/swriter/guide"
    page.mkdir(parents=True)
    (page / "a.html").write_text(HELP_HTML, encoding="utf-8")
    (page / "b.xhp").write_text(HELP_XHP, encoding="utf-8")
    got = ts.sentences_from_tree(tmp_path, "libreoffice-help", "pl")
    assert got == sorted(got, key=lambda s: s.casefold())
    assert "Przeciągnij wykres z arkusza kalkulacyjnego do dokumentu tekstowego." in got
    assert "Aby edytować dane wykresu, kliknij dwukrotnie na obszar wykresu." in got
    assert not any("This page" in s or "LibreOffice" in s for s in got)


def test_fortunes_tree(tmp_path):
    base = tmp_path / "usr/share/games/fortunes/pl"
    (base / "off").mkdir(parents=True)
    (base / "mysli").write_text(
        "Kto rano wstaje, temu Pan Bóg daje i nikt mu nie przeszkadza.\n"
        "\t\t-- Przysłowie polskie, które nie jest zdaniem\n%\n"
        "Lepszy wróbel w garści\nniż gołąb na dachu, mówi stare przysłowie.\n%\n",
        encoding="utf-8",
    )
    (base / "mysli.dat").write_bytes(b"\x00\x01binary index")
    (base / "off" / "brzydkie").write_text(
        "Brzydkie zdanie, którego nikt nie powinien czytać.\n%\n", encoding="utf-8"
    )
    got = ts.sentences_from_tree(tmp_path, "fortunes", "pl")
    assert got == [
        "Kto rano wstaje, temu Pan Bóg daje i nikt mu nie przeszkadza.",
        "Lepszy wróbel w garści niż gołąb na dachu, mówi stare przysłowie.",
    ]


def test_fortune_entries_attribution():
    entries = ex.fortune_entries("One line here.\n    -- Somebody\n%\nTwo\nlines.\n")
    assert entries == ["One line here.", "Two lines."]


def test_parse_mo_roundtrip():
    data = make_mo({"Open": "~Agor", "Files": "Ffeil\0Ffeiliau", "Hi": "Helo"})
    got = ex.parse_mo(data)
    assert got["Open"] == ["~Agor"] and got["Files"] == ["Ffeil", "Ffeiliau"]
    assert "" not in got  # the header entry
    with pytest.raises(ValueError):
        ex.parse_mo(b"\0" * 40)


def test_mo_tree_to_welsh_sentences(tmp_path):
    d = tmp_path / "usr/lib/libreoffice/program/resource/cy/LC_MESSAGES"
    d.mkdir(parents=True)
    (d / "sw.mo").write_bytes(make_mo({
        "a": "Dewiswch y ~cofnod yn y geiriadur cyfredol rydych am ei olygu.",
        "b": "Agor",  # too short
        "c": "Cadw'r ffeil %1 yn y ffolder presennol ar unwaith.",  # placeholder
    }))
    got = ts.sentences_from_tree(tmp_path, "gettext-mo", "cy")
    assert got == ["Dewiswch y cofnod yn y geiriadur cyfredol rydych am ei olygu."]


def test_mozilla_formats(tmp_path):
    ftl = (
        "-brand-short-name = Firefox\n"
        "msg-one = Mae { -brand-short-name } yn agor y dudalen gartref newydd nawr.\n"
        "msg-two =\n    .tooltiptext = Rheoli rhannu eich meicroffon gyda'r wefan hon.\n"
        "msg-three = Mae gennych { $count } tab ar agor yn y ffenestr hon.\n"
    )
    props = "# comment\nkey=Nid yw\\u2019r ffeil ar gael ar hyn o bryd o gwbl.\n"
    dtd = '<!ENTITY key.label "Mae&apos;r dudalen hon wedi ei chadw yn y ffolder.">\n'
    xpi = tmp_path / "usr/lib/firefox-esr/browser/extensions/langpack-cy@firefox.xpi"
    xpi.parent.mkdir(parents=True)
    with zipfile.ZipFile(xpi, "w") as zf:
        zf.writestr("localization/cy/browser.ftl", ftl)
        zf.writestr("chrome/cy/a.properties", props)
        zf.writestr("chrome/cy/b.dtd", dtd)
    got = ts.sentences_from_tree(tmp_path, "mozilla-langpack", "cy")
    assert "Mae Firefox yn agor y dudalen gartref newydd nawr." in got
    assert "Rheoli rhannu eich meicroffon gyda'r wefan hon." in got
    assert "Nid yw’r ffeil ar gael ar hyn o bryd o gwbl." in got
    assert "Mae'r dudalen hon wedi ei chadw yn y ffolder." in got
    assert not any("count" in s for s in got)


def test_missing_package_names_package_and_language(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_WHISPER_CACHE", str(tmp_path))
    monkeypatch.setattr(ts.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match=r"libreoffice-l10n-cy.*'cy'"):
        ts.load_sentences("cy")


def test_unknown_language_source():
    with pytest.raises(UserError, match="no text source"):
        ts.load_sentences("tlh")


def test_sentence_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_WHISPER_CACHE", str(tmp_path))
    calls = []

    def fake_extract(lang):
        calls.append(lang)
        return ["Pierwsze zdanie jest tutaj całkiem długie.", "Drugie zdanie."], {"sources": []}

    monkeypatch.setattr(ts, "extract_language", fake_extract)
    first = ts.load_sentences("pl")
    second = ts.load_sentences("pl")
    assert first == second and calls == ["pl"]
    assert ts.cache_path("pl").is_relative_to(tmp_path)
