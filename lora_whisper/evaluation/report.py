"""An evaluation's results as files: report.json (everything, machine-readable), report.md
(the table a person reads), report.png (error per language, grouped by system), and
hyps.jsonl (every utterance's reference and hypothesis, normalised, with its error count)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from lora_whisper.evaluation.metrics import LanguageScore, gains, macro_average
from lora_whisper.evaluation.plot import plot_report


@dataclass
class SystemResult:
    name: str
    kind: str                          # adapters | full-model | backbone
    path: str | None
    scores: dict[str, LanguageScore]
    hyps: list = field(default_factory=list)   # Hypothesis objects (empty when read back)
    ids_sha256: str | None = None

    def summary(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "path": self.path, "ids_sha256": self.ids_sha256,
            "languages": {k: s.to_dict() for k, s in self.scores.items()},
            "macro": {"error": round(macro_average(self.scores), 4),
                      "clipped": round(macro_average(self.scores, clipped=True), 4)},
        }

    @classmethod
    def from_summary(cls, d: dict) -> "SystemResult":
        scores = {k: LanguageScore(v["language"], v["metric"], v["n"], v["errors"], v["length"],
                                   v["clipped_errors"]) for k, v in d["languages"].items()}
        return cls(d["name"], d["kind"], d.get("path"), scores, [], d.get("ids_sha256"))


def ids_digest(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def build_report(system: SystemResult, data: str, settings: dict,
                 compare: SystemResult | None = None) -> dict:
    report = {"system": system.summary(), "data": data, "settings": settings}
    if compare is not None:
        report["compare"] = compare.summary()
        report["relative_gain"] = {k: round(v, 4) for k, v in gains(compare.scores, system.scores).items()}
        report["relative_gain_clipped"] = {k: round(v, 4) for k, v in
                                           gains(compare.scores, system.scores, clipped=True).items()}
    return report


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def markdown(report: dict) -> str:
    s = report["system"]
    c = report.get("compare")
    lines = [f"# Evaluation: {s['name']}", "",
             f"Data: `{report['data']}`; {sum(v['n'] for v in s['languages'].values())} utterances. "
             "Error in % (WER; CER for languages written without spaces), after Whisper's "
             "BasicTextNormalizer. *Clipped*: each utterance's errors capped at its length.", ""]
    head = ["language", "metric", "n", f"{s['name']}", "clipped"]
    if c:
        head += [f"{c['name']}", "clipped", "relative gain %"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lang, v in s["languages"].items():
        row = [lang, v["metric"], str(v["n"]), _fmt(v["error"]), _fmt(v["clipped"])]
        if c:
            o = c["languages"].get(lang)
            g = report["relative_gain"].get(lang)
            row += [_fmt(o["error"]) if o else "-", _fmt(o["clipped"]) if o else "-",
                    _fmt(g) if g is not None else "-"]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**macro**", "", "", _fmt(s["macro"]["error"]), _fmt(s["macro"]["clipped"])]
    if c:
        row += [_fmt(c["macro"]["error"]), _fmt(c["macro"]["clipped"]),
                _fmt(report["relative_gain"].get("macro", float("nan")))]
    lines.append("| " + " | ".join(row) + " |")
    if c:
        lines += ["", f"Relative gain = (compare − system) / compare × 100, on raw error; on clipped "
                      f"error the macro gain is {_fmt(report['relative_gain_clipped'].get('macro', float('nan')))}%."]
    lines += ["", "## Decoding settings", ""]
    lines += [f"- {k}: `{v}`" for k, v in report["settings"].items()]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, report: dict, system: SystemResult,
                 compare: SystemResult | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "report.png",
             "hyps": out / "hyps.jsonl"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text(markdown(report))
    _write_hyps(paths["hyps"], system.hyps)
    if compare is not None and compare.hyps:
        paths["compare_hyps"] = out / "hyps.compare.jsonl"
        _write_hyps(paths["compare_hyps"], compare.hyps)
    plot_report(report, paths["png"])
    return paths


def _write_hyps(path: Path, hyps) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for h in hyps:
            fh.write(json.dumps(h.to_dict(), ensure_ascii=False) + "\n")
