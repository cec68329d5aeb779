"""Make the bundle benchmarks/gpu_run.sh needs on a machine without network or Debian TTS:
the multilingual and expansion corpora (built here, where the engines are) as Opus audio with
manifests pointing at it, in one tar of at most 60 MB, plus the wheels the GPU machine lacks.

    python benchmarks/gpu_pack.py --out gpu_bundle                 # the gpu presets
    python benchmarks/gpu_pack.py --out /tmp/gpu_bundle --preset tiny --languages pl,it,da

Writes OUT/corpus.tar (corpora/gpu-<preset>/bench/ and corpora/gpu-<preset>/expansion/, Opus,
manifests rewritten) and OUT/wheels/ (pip wheels from this machine's pip cache / index for the
packages listed in WHEELS; the GPU machine's own torch is kept). The whisper-base weights are
not included: they are 145 MB in float16, more than a device call carries (64 MiB); bring
them as LORA_WHISPER_CACHE (a converted cache) by another path.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
LIMIT_MB = 60
# what lora_whisper imports for training and evaluation that a CUDA PyTorch image may lack
WHEELS = ("transformers==5.24.0", "tokenizers==0.23.3", "safetensors==0.8.0", "soundfile==0.14.0",
          "soxr==1.1.0", "jiwer==4.0.0", "tqdm==4.70.1", "platformdirs==4.14.8", "pypinyin==0.55.0")


def to_opus(corpus: Path, dest: Path, level: float = 0.96) -> tuple[int, float]:
    """Copy `corpus` to `dest` with every WAV as Opus; returns (files, seconds of audio)."""
    import soundfile as sf

    n, seconds = 0, 0.0
    for split in ("train", "dev", "test"):
        src = corpus / f"{split}.jsonl"
        if not src.exists():
            continue
        rows = []
        for line in src.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            audio, sr = sf.read(corpus / r["audio"], dtype="float32")
            rel = str(Path(r["audio"]).with_suffix(".opus"))
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            # Opus in Ogg at 16 kHz mono; compression level trades size for quality
            sf.write(dest / rel, audio, sr, format="OGG", subtype="OPUS", compression_level=level)
            r["audio"] = rel
            rows.append(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
            seconds += len(audio) / sr
        (dest / f"{split}.jsonl").write_text("".join(rows), encoding="utf-8")
    meta = corpus / "corpus.json"
    if meta.exists():
        (dest / "corpus.json").write_text(meta.read_text(encoding="utf-8"), encoding="utf-8")
    return n, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "gpu_bundle"))
    ap.add_argument("--preset", default="gpu", help="multilingual.py and expansion.py preset")
    ap.add_argument("--languages", default=None, help="multilingual languages (default: the benchmark's)")
    ap.add_argument("--level", type=float, default=0.96, help="Opus compression level 0..1 (0.96: ~17 kbps; higher: smaller)")
    ap.add_argument("--no-wheels", action="store_true")
    args = ap.parse_args()
    import expansion
    import multilingual

    t0 = time.time()
    out = Path(args.out)
    stage = out / "stage"
    langs = tuple(args.languages.split(",")) if args.languages else multilingual.LANGS
    ml_src = multilingual.ensure_corpus(REPO / "corpora" / f"bench-{args.preset}",
                                        multilingual.PRESETS[args.preset], langs)
    ex_work = REPO / "corpora" / f"expansion-{args.preset}"
    ex_work.mkdir(parents=True, exist_ok=True)
    ex_src = expansion.build(ex_work, dict(expansion.PRESETS[args.preset]))
    sizes = {}
    # unpacked on the GPU machine as corpora/gpu-<preset>/{bench,expansion} (beside, never over,
    # the WAV corpora they were made from)
    for src, rel in ((ml_src, f"corpora/gpu-{args.preset}/bench"), (ex_src, f"corpora/gpu-{args.preset}/expansion")):
        n, sec = to_opus(src, stage / rel, level=args.level)
        sizes[rel] = {"files": n, "audio_seconds": round(sec, 1)}
    out.mkdir(parents=True, exist_ok=True)
    tar = out / "corpus.tar"
    with tarfile.open(tar, "w") as tf:   # Opus is compressed already
        tf.add(stage / "corpora", arcname="corpora")
    mb = tar.stat().st_size / 2 ** 20
    summary = {"tar": str(tar), "megabytes": round(mb, 2), "limit_mb": LIMIT_MB, "corpora": sizes,
               "seconds": round(time.time() - t0, 1)}
    if not args.no_wheels:
        wheels = out / "wheels"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps",
                               "-d", str(wheels), *WHEELS], capture_output=True, text=True)
        summary["wheels"] = sorted(p.name for p in wheels.glob("*.whl")) if proc.returncode == 0 else proc.stderr[-500:]
    (out / "bundle.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if mb > LIMIT_MB:
        print(f"corpus.tar is {mb:.1f} MB, over {LIMIT_MB} MB: raise --level or use a smaller preset", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
