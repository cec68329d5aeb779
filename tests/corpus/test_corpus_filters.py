from __future__ import annotations

import pytest

from lora_whisper.corpus.filters import (
    clean_sentences,
    dedup_key,
    is_sentence,
    reject_reason,
    split_sentences,
)

GOOD = {
    "pl": "Możesz wstawić kopię wykresu do dokumentu tekstowego.",
    "el": "Αυτή η λειτουργία είναι διαθέσιμη μόνο με σχεσιακή βάση δεδομένων.",
    "ru": "Чтобы добавить формулу массива, выделите весь массив.",
    "zh": "选择要插入的备注类型，即脚注或尾注。",
    "ja": "マウスでルーラーをクリックすると左揃えのタブが設定されます。",
    "cy": "Dewiswch y cofnod yn y geiriadur cyfredol rydych chi am ei olygu.",
    "en": "What garlic is to food, insanity is to art.",
    "it": "Selezionate la lingua dall'elenco delle lingue disponibili.",
}


@pytest.mark.parametrize("lang", sorted(GOOD))
def test_real_sentences_pass(lang):
    assert reject_reason(GOOD[lang], lang) is None


@pytest.mark.parametrize(
    "text, lang",
    [
        ("Αυτή η λειτουργία είναι διαθέσιμη μόνο στο LibreOffice Calc.", "el"),
        ("Чтобы добавить формулу, откройте меню Insert сейчас.", "ru"),
        ("选择要插入的备注类型，即脚注或尾注Writer。", "zh"),
        ("选择要插入的备注类型ですか、即脚注或尾注。", "zh"),  # kana: Japanese, not Chinese
        ("选择要插入的备注类型即脚注或尾注。", "ja"),  # no kana: Chinese, not Japanese
        ("マウスでルーラーをクリックするとＡＢＣのタブが設定されます。", "ja"),  # full-width Latin
        ("Αυτή η λειτουργία είναι διαθέσιμη μόνο με σχεσιακή βάση δεδομένων ß.", "el"),
    ],
)
def test_script_purity(text, lang):
    assert not is_sentence(text, lang)


@pytest.mark.parametrize(
    "text",
    [
        "Wybierz 3 kolumny z arkusza kalkulacyjnego teraz.",  # digit
        "Wybierz trzy kolumny z arkusza ３ kalkulacyjnego.",  # full-width digit
        "Otwórz plik %s w edytorze tekstowym teraz.",
        "Ustaw zmienną $HOME na katalog domowy użytkownika.",
        "Plik {name} został zapisany na dysku twardym.",
        "Kliknij <b>przycisk</b> aby zamknąć okno dialogowe.",
        "Kliknij przycisk &amp; zamknij okno dialogowe teraz.",
        "Więcej informacji znajdziesz na stronie www.example.org w sieci.",
        "Wybierz Format - Znak - Czcionka, aby zmienić krój pisma.",  # menu path
        "Naciśnij Ctrl+Shift, aby przełączyć układ klawiatury.",
        "Wybierz Narzędzia – Opcje – LibreOffice – Ogólne, aby zmienić ustawienia.",
        "Nie jest ystod dibynnol y newidolyn(ion) w tym miejscu.",
    ],
)
def test_markup_digits_placeholders_rejected(text):
    assert not is_sentence(text, "pl")


def test_length_limits():
    assert not is_sentence("Zapisz plik teraz.", "pl")  # 3 words
    long = "Zapisz " + " ".join(["plik"] * 30) + "."
    assert not is_sentence(long, "pl")
    assert not is_sentence("删除区域。", "zh")  # 4 characters
    assert not is_sentence("删除" * 30 + "。", "zh")
    assert is_sentence("删除定义的打印区域。", "zh")
    wordy = "Właściwości " + " ".join(["przerwania"] * 14) + "."  # 15 words, 170 characters
    assert not is_sentence(wordy, "pl")


def test_language_plausibility():
    # untranslated English inside a Polish catalog
    assert not is_sentence("Click the button with the mouse pointer.", "pl")
    # Latin letters not in the Polish alphabet
    assert not is_sentence("Müller powiedział, że nie przyjdzie jutro.", "pl")
    assert not is_sentence("Use the Media Player to preview all supported media files.", "pl")
    assert not is_sentence("NombreAntiguo, NombreNuevo: expresión de cadena que especifique.", "es")
    assert not is_sentence("La vita e' bella, disse il vecchio pescatore.", "it")
    # false friends of English are the language's own words
    assert is_sentence("Was willst du also machen, wenn ich an der See bin?", "de")
    assert is_sentence("Det er en god idé at gemme dokumentet for at undgå tab.", "da")
    assert is_sentence("Per annullare premete il tasto Esc in LibreOffice subito.", "it")
    # lower-case start: a fragment from a bad split
    assert not is_sentence("możesz wstawić kopię wykresu do dokumentu.", "pl")


def test_dedup_is_case_and_space_insensitive():
    items = [GOOD["pl"], "  " + GOOD["pl"].upper(), GOOD["pl"].replace(" ", "  "), GOOD["en"]]
    out = clean_sentences(items, "pl", check=False)
    assert len(out) == 2
    assert len({dedup_key(s) for s in out}) == 2


def test_clean_filters_and_sorts():
    out = clean_sentences([GOOD["pl"], "Kliknij 5 razy tutaj i tam.", GOOD["pl"]], "pl")
    assert out == [GOOD["pl"]]


def test_split_sentences():
    assert split_sentences("Pierwsze zdanie. Drugie zdanie! Trzecie?", "pl") == [
        "Pierwsze zdanie.", "Drugie zdanie!", "Trzecie?"
    ]
    assert split_sentences("删除区域。输入名称。", "zh") == ["删除区域。", "输入名称。"]
    assert split_sentences("Τι είναι; Αυτό.", "el") == ["Τι είναι;", "Αυτό."]
