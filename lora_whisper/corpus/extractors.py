"""Raw text out of the file formats Debian ships translations in.

Each extractor takes a directory tree (an unpacked .deb) and yields candidate strings;
sentence splitting and filtering happen later, in one place. Each format also has a
function on one file or byte string, so tests can feed in tiny hand-made examples.
"""
from __future__ import annotations

import html
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

# ---------------------------------------------------------------- LibreOffice help
# Debian ships the help prebuilt as HTML (the sources are .xhp XML); both keep prose in
# paragraph elements, and the page chrome (menus, debug footer in English) outside them.
_PARA_RE = re.compile(
    r"<(p|paragraph)\b([^>]*)>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE
)
_CLASS_RE = re.compile(r"""(?:class|role)\s*=\s*["']([^"']*)["']""")
_TAG_RE = re.compile(r"<[^>]+>")
# Link lists and "related topics" are titles, not sentences; `bug`/`debug` is the footer.
_SKIP_CLASSES = {"embedded", "related", "bug", "debug", "code", "bascode", "example"}


# Platform-specific wording ("Tools - Options" vs the macOS "Preferences") is stored as
# alternatives; stripping tags alone would glue them together ("PreferencesTools").
# Keep only the default: drop hidden non-default spans (HTML) and <caseinline> (xhp).
_ALTERNATIVE_RE = re.compile(r'<span\b[^>]*\bhidden="true"[^>]*\bid="(?!default)[^"]*"[^>]*>')
_CASEINLINE_RE = re.compile(r"<caseinline\b[^>]*>.*?</caseinline\s*>", re.DOTALL)
_SPAN_TAG_RE = re.compile(r"<(/?)span\b[^>]*>")


def _drop_alternatives(markup: str) -> str:
    markup = _CASEINLINE_RE.sub("", markup)
    while (m := _ALTERNATIVE_RE.search(markup)) is not None:
        depth, end = 1, len(markup)
        for tag in _SPAN_TAG_RE.finditer(markup, m.end()):
            depth += -1 if tag.group(1) else 1
            if depth == 0:
                end = tag.end()
                break
        markup = markup[: m.start()] + markup[end:]
    return markup


def help_paragraphs(markup: str) -> list[str]:
    """Paragraph texts of one help page (.html or .xhp)."""
    start = markup.find('id="DisplayArea"')
    if start >= 0:
        markup = markup[start:]
    end = markup.find("<footer")
    if end >= 0:
        markup = markup[:end]
    markup = _drop_alternatives(markup)
    out = []
    for _tag, attrs, body in _PARA_RE.findall(markup):
        cls = _CLASS_RE.search(attrs)
        if cls and set(cls.group(1).split()) & _SKIP_CLASSES:
            continue
        # inner <p> (nested switch blocks) would be matched twice: keep the innermost
        if re.search(r"<(p|paragraph)\b", body, re.IGNORECASE):
            continue
        text = html.unescape(_TAG_RE.sub("", body))
        if text.strip():
            out.append(text)
    return out


def libreoffice_help(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*")):
        if path.suffix in (".html", ".xhp") and "/help/" in path.as_posix():
            yield from help_paragraphs(path.read_text("utf-8", errors="replace"))


# ---------------------------------------------------------------- fortunes
_ATTRIBUTION_RE = re.compile(r"^\s*(--|—|―|~~)")


def fortune_entries(text: str) -> list[str]:
    """Entries of a fortune file (separated by '%' lines), attribution lines dropped,
    lines joined: verse and wrapped prose read the same once split into sentences."""
    out = []
    for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        lines = []
        for line in entry.splitlines():
            if _ATTRIBUTION_RE.match(line):
                break
            lines.append(line.strip())
        joined = " ".join(x for x in lines if x)
        if joined:
            out.append(joined)
    return out


def fortunes(root: Path) -> Iterator[str]:
    base = root / "usr/share/games"
    for path in sorted(base.rglob("*")) if base.exists() else []:
        # .dat are indexes; .u8 are links or empty twins; off/ and *offensive* are the
        # rot13'd offensive sets, not wanted in a benchmark
        if (
            path.is_symlink()
            or not path.is_file()
            or path.suffix in (".dat", ".u8", ".gz", ".pl")
            or "off" in path.relative_to(base).parts
            or "offensive" in path.name
            or path.name in _SKIP_FORTUNES
        ):
            continue
        yield from fortune_entries(path.read_bytes().decode("utf-8", errors="replace"))


# ascii art and the multilingual "translate-me" set are not prose of the package language
_SKIP_FORTUNES = {"ascii-art", "translate-me", "perl", "zippy"}


# ---------------------------------------------------------------- gettext .mo
def parse_mo(data: bytes) -> dict[str, list[str]]:
    """msgid -> translations (several for plural forms), as GNU msgfmt lays them out."""
    if len(data) < 20:
        raise ValueError("not a .mo file: too short")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        order = "<"
    elif magic == 0xDE120495:
        order = ">"
    else:
        raise ValueError("not a .mo file: bad magic number")
    _rev, count, orig_off, trans_off = struct.unpack(order + "4I", data[4:20])
    out: dict[str, list[str]] = {}
    for i in range(count):
        olen, opos = struct.unpack(order + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, tpos = struct.unpack(order + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        msgid = data[opos: opos + olen].decode("utf-8", errors="replace")
        if not msgid:
            continue  # the header entry
        msgstr = data[tpos: tpos + tlen].decode("utf-8", errors="replace")
        out[msgid] = [s for s in msgstr.split("\x00") if s]
    return out


def _strip_accelerator(text: str) -> str:
    # LibreOffice marks mnemonics with "~", GTK with "_": "~Open" is "Open" when spoken
    return re.sub(r"[~_](?=\w)", "", text)


def mo_catalogs(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.mo")):
        for translations in parse_mo(path.read_bytes()).values():
            for text in translations:
                yield _strip_accelerator(text)


# ---------------------------------------------------------------- Mozilla language packs
_FLUENT_TERM_RE = re.compile(r"\{\s*(-[\w-]+)\s*\}")


def fluent_messages(text: str) -> list[str]:
    """Message and attribute values of a Fluent (.ftl) file; `{ -brand-name }` terms are
    resolved from the same text, anything else in braces is left for the filter to drop."""
    values: list[tuple[str, str]] = []  # (id, value)
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            current = None
            continue
        m = re.match(r"^(-?[\w-]+)\s*=\s*(.*)$", line)
        a = re.match(r"^\s+\.([\w-]+)\s*=\s*(.*)$", line)
        if m and not line[0].isspace():
            values.append((m.group(1), m.group(2)))
            current = [m.group(1)]
        elif a and current is not None:
            values.append((f"{current[0]}.{a.group(1)}", a.group(2)))
        elif line[0].isspace() and values and current is not None:
            key, value = values[-1]
            values[-1] = (key, f"{value} {line.strip()}".strip())
    terms = {k: v for k, v in values if k.startswith("-") and "{" not in v}
    out = []
    for key, value in values:
        if key.startswith("-") or not value:
            continue
        out.append(_FLUENT_TERM_RE.sub(lambda m: terms.get(m.group(1), m.group(0)), value))
    return out


def properties_messages(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        value = line.split("=", 1)[1].strip()
        value = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), value)
        out.extend(v for v in value.split(";") if v.strip())  # plural forms
    return out


def dtd_messages(text: str) -> list[str]:
    found = re.findall(r"""<!ENTITY\s+[\w.-]+\s+(?:"([^"]*)"|'([^']*)')\s*>""", text)
    return [html.unescape(a or b) for a, b in found if a or b]


def mozilla_langpacks(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.xpi")):
        with zipfile.ZipFile(path) as zf:
            # brand terms live in their own file: gather every .ftl before resolving
            ftl = "\n\n".join(
                zf.read(n).decode("utf-8", errors="replace")
                for n in sorted(zf.namelist())
                if n.endswith(".ftl")
            )
            yield from fluent_messages(ftl)
            for name in sorted(zf.namelist()):
                data = zf.read(name).decode("utf-8", errors="replace")
                if name.endswith(".properties"):
                    yield from properties_messages(data)
                elif name.endswith(".dtd"):
                    yield from dtd_messages(data)


EXTRACTORS = {
    "libreoffice-help": libreoffice_help,
    "fortunes": fortunes,
    "gettext-mo": mo_catalogs,
    "mozilla-langpack": mozilla_langpacks,
}
