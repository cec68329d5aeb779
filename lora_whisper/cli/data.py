"""`lora-whisper data check SOURCE`: counts, hours and every bad row of a data source.

`lora-whisper data manifest SOURCE OUT.jsonl` writes any source as our manifest.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from lora_whisper.cli._options import positive_int


# How far a manifest's declared duration may be from the decoded one (rounding, resampling
# edges, a header that counts padding) before the row is reported.
DURATION_SLACK_S, DURATION_SLACK = 0.5, 0.05


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="inspect and convert speech data sources")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check", help="count utterances and hours per language; list every bad row",
        description="Reads the whole source and reports every bad row (malformed line, "
                    "missing or undecodable audio, empty text, unknown language) rather than "
                    "stopping at the first. Exit code 1 when any row is bad.")
    _source_args(check)
    check.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                       help="decode every clip (finds corrupt audio, measures durations); "
                            "--no-decode only checks that files exist (default: decode)")
    check.add_argument("--jobs", type=positive_int, default=1, help="decoding threads (default 1)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)

    manifest = sub.add_parser("manifest", help="write a source as a JSONL manifest")
    _source_args(manifest)
    manifest.add_argument("out", help="manifest file to write (.jsonl)")
    manifest.set_defaults(func=run_manifest)


def _source_args(parser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a .jsonl/.csv/.tsv file or a corpus folder (Common Voice, MLS, "
                             "FLEURS, saved HF dataset, audio + .txt); FORMAT:PATH forces a "
                             "format (jsonl, csv, tsv, cv, mls, fleurs, hf, folder)")
    parser.add_argument("--language", help="language code for sources without one; "
                                           "keeps only that language in mixed sources")
    parser.add_argument("--split", help="train, dev or test (or validated for Common Voice)")


def run_check(args) -> int:
    from lora_whisper.data.readers import read_source

    rows = read_source(args.source, args.language, args.split)
    bad = list(rows.bad)
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    unknown_duration: dict[str, int] = defaultdict(int)
    good = []
    for utt, result in _durations(rows.utterances, args.decode, args.jobs):
        if isinstance(result, str):
            from lora_whisper.data.utterance import BadRow

            bad.append(BadRow(utt.origin or utt.id, result, utt.id))
            continue
        if args.decode and utt.duration is not None and result is not None \
                and abs(utt.duration - result) > max(DURATION_SLACK_S, DURATION_SLACK * result):
            from lora_whisper.data.utterance import BadRow

            # Batching and hours are planned from declared durations: a wrong one is a bad row.
            bad.append(BadRow(utt.origin or utt.id, f"declared duration {utt.duration:g} s but the audio "
                                                    f"is {result:.2f} s ({utt.audio})", utt.id))
            continue
        good.append(utt)
        counts[utt.language] += 1
        if result is None:
            unknown_duration[utt.language] += 1
        else:
            seconds[utt.language] += result
    bad.sort(key=_source_order)
    report = {
        "source": str(rows.path), "format": rows.format,
        "languages": {lang: {"utterances": counts[lang], "hours": seconds[lang] / 3600,
                             "without_duration": unknown_duration[lang]}
                      for lang in sorted(counts)},
        "total": {"utterances": len(good), "hours": sum(seconds.values()) / 3600,
                  "bad_rows": len(bad)},
        "bad_rows": [{"where": b.where, "id": b.id, "problem": b.problem} for b in bad],
    }
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else _text(report))
    return 1 if bad or not good else 0


def _durations(utterances, decode: bool, jobs: int):
    """Yield (utterance, seconds | None | 'problem') in order."""
    if not decode:
        for utt in utterances:
            yield utt, utt.duration
        return
    from tqdm import tqdm

    from lora_whisper.audio import AudioError, load_audio

    def measure(utt):
        try:
            return len(load_audio(utt.audio)) / 16000
        except AudioError as exc:
            return exc.reason

    with ThreadPoolExecutor(max(1, jobs)) as pool, \
            tqdm(total=len(utterances), desc="decoding", unit="utt", file=sys.stderr) as bar:
        for utt, result in zip(utterances, pool.map(measure, utterances)):
            bar.update()
            yield utt, result


def _source_order(bad) -> tuple:
    # Rows found bad while decoding come after the reader's; list all in file order.
    path, _, line = bad.where.rpartition(":")
    return (path, int(line), "") if line.isdigit() else (bad.where, -1, bad.problem)


def _hms(hours: float) -> str:
    s = round(hours * 3600)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _text(report: dict) -> str:
    lines = [f"source: {report['source']} (format {report['format']})",
             f"{'language':<10}{'utterances':>12}{'hours':>10}{'h:mm:ss':>12}"]
    for lang, s in report["languages"].items():
        note = f"  ({s['without_duration']} without duration)" if s["without_duration"] else ""
        lines.append(f"{lang:<10}{s['utterances']:>12}{s['hours']:>10.2f}{_hms(s['hours']):>12}{note}")
    t = report["total"]
    lines.append(f"{'total':<10}{t['utterances']:>12}{t['hours']:>10.2f}{_hms(t['hours']):>12}")
    if not t["utterances"]:
        lines.append("no usable utterances")
    if report["bad_rows"]:
        lines.append(f"bad rows ({len(report['bad_rows'])}):")
        lines += [f"  {b['where']}: {b['problem']}" for b in report["bad_rows"]]
    else:
        lines.append("bad rows: none")
    return "\n".join(lines)


def run_manifest(args) -> int:
    from lora_whisper.data.manifest import write_manifest
    from lora_whisper.data.readers import open_source

    utterances = open_source(args.source, args.language, args.split)
    path = write_manifest(args.out, utterances)
    print(f"wrote {len(utterances)} utterances to {path}")
    return 0
