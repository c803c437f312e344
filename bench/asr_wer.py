"""ASR word error rate and time, Whisper's full 30 s window against shorter ones (issue 7).

The test speech, with reference texts:

* real recordings from Debian's pocketsphinx-testdata: the five LibriVox sentences, the five
  "cards" utterances and "go forward ten meters" (the clips the voice benchmarks use, and more);
* twenty call-centre sentences synthesised by `flite -voice slt` (the tests' caller voice);
* the same twenty sentences spoken by Piper joe (the agent's voice; in its worker process, as the
  server runs it).

Every clip is transcribed by `WhisperAsr.transcribe_sync` (beam 1, word timestamps, exactly the
server's call) once per variant: the full window (`window_margin_s=None`, the code before issue 7)
and the short windows (utterance + margin, rounded up to whole seconds). Variants alternate clip by
clip so that machine noise hits them alike; after one warm-up pass, `--repeats` timed passes.

WER = (substitutions + deletions + insertions) / reference words, over each set, after a
normalisation both sides share (lower case, punctuation dropped, numbers 0-99 as words,
"mr" = "mister"). Printed per set and variant, with the median transcription time; JSON to --out.

Run: .venv/bin/python bench/asr_wer.py [--windows 8:2:5,8:2:5:0,8:2,5:2:5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voice import TESTDATA, flite_samples, read_wav
from voxline.speech.whisper import WhisperAsr

RATE = 16_000
SENTENCES: tuple[str, ...] = (
    "Hi, I would like to book a table for two tonight.",
    "Can you tell me your opening hours on Sunday?",
    "I need to move my appointment to Friday morning.",
    "My order number is four five seven two nine.",
    "I was charged twice for the same delivery last week.",
    "Could you send the invoice to my email address please?",
    "I would like to cancel my subscription at the end of the month.",
    "The package arrived damaged and I want a replacement.",
    "What time does the pharmacy close on Saturday?",
    "Please transfer me to someone in the billing department.",
    "I forgot my password and cannot log in to my account.",
    "Is there a parking lot near the main entrance?",
    "My flight was delayed and I missed the connection.",
    "Can I pay with a credit card over the phone?",
    "I want to change the delivery address for my order.",
    "How much does the premium plan cost per month?",
    "The heating in my apartment stopped working yesterday.",
    "Yes, that is correct, thank you very much.",
    "No, I would rather speak to a manager about this.",
    "Could you repeat the confirmation code one more time?",
)
RECORDINGS_WITH_TEXT: tuple[tuple[str, str, str], ...] = (
    ("goforward", "goforward.raw", "go forward ten meters"),
    *(
        (f"cards_{i:03d}", f"cards/{i:03d}.wav", text)
        for i, text in enumerate(
            (
                "ten of clubs",
                "four queen of clubs",
                "seven of clubs",
                "five five",
                "eight of spades four of clubs seven of hearts",
            ),
            start=1,
        )
    ),
    *(
        (f"ls_{n}", f"librivox/sense_and_sensibility_01_austen_64kb-{n}.wav", text)
        for n, text in (
            (
                "0870",
                "and mister john dashwood had then leisure to consider how much there might be prudently "
                "in his power to do for them",
            ),
            ("0880", "he was not an ill disposed young man"),
            ("0890", "unless to be rather cold hearted and rather selfish is to be ill disposed"),
            (
                "0920",
                "had he married a more amiable woman he might have been made still more respectable than he was",
            ),
            ("0930", "he might even have been made amiable himself"),
        )
    ),
)

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_ONES += "seventeen eighteen nineteen"
ONES = _ONES.split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    return " ".join(ONES[int(d)] for d in str(n))  # long numbers read digit by digit


def normalise(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda m: " " + number_words(int(m.group())) + " ", text)
    words = re.sub(r"[^a-z' ]", " ", text).split()
    return ["mister" if w == "mr" else w.strip("'") for w in words if w.strip("'")]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@dataclass
class Clip:
    set: str
    name: str
    audio: np.ndarray  # float32, 16 kHz
    text: str


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    x = samples.astype(np.float32) / 32768 if samples.dtype == np.int16 else samples.astype(np.float32)
    return x if rate == RATE else soxr.resample(x, rate, RATE).astype(np.float32)


async def piper_clips() -> list[Clip]:
    from voxline.speech.piper import PiperTts

    tts = await PiperTts.start(workers=1)
    clips: list[Clip] = []
    try:
        for i, text in enumerate(SENTENCES):
            parts: list[np.ndarray] = []
            rate = RATE
            async for chunk in tts.synthesize(text, voice_id="piper-joe"):
                parts.append(np.asarray(chunk.pcm, dtype=np.int16))
                rate = chunk.sample_rate
            clips.append(Clip("piper", f"piper_{i:02d}", resample(np.concatenate(parts), rate), text))
    finally:
        await tts.close()
    return clips


def load_clips() -> list[Clip]:
    clips: list[Clip] = []
    for name, rel, text in RECORDINGS_WITH_TEXT:
        path = TESTDATA / rel
        if path.suffix == ".raw":
            samples, rate = np.frombuffer(path.read_bytes(), dtype="<i2"), RATE
        else:
            samples, rate = read_wav(path)
        clips.append(Clip("real", name, resample(samples, rate), text))
    for i, text in enumerate(SENTENCES):
        samples, rate = flite_samples(text)
        clips.append(Clip("flite", f"flite_{i:02d}", resample(samples, rate), text))
    clips.extend(asyncio.run(piper_clips()))
    return clips


def variant_name(window: tuple[float, ...] | None) -> str:
    if window is None:
        return "full-30s"
    name = f"min{window[0]:g}s+{window[1]:g}s" + (f"-beam{window[2]:g}" if len(window) > 2 else "")
    return name + ("-zeropad" if len(window) > 3 and window[3] == 0 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--windows",
        default="8:2:5,8:2:5:0,8:2,5:2:5",
        help="short windows as min_s:margin_s[:beam[:pad]], comma-separated (beam 1 unless given; pad 0 = "
        "zero padding, else silence padding)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed passes after the warm-up pass")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "asr_wer.json"))
    args = parser.parse_args(argv)
    windows = [tuple(float(x) for x in w.split(":")) for w in args.windows.split(",")]
    margins: list[tuple[float, ...] | None] = [None, *windows]
    clips = load_clips()
    asr = {
        m: WhisperAsr(workers=1, window_margin_s=None, beam_size=1)  # the code before issue 7
        if m is None
        else WhisperAsr(
            workers=1,
            window_min_s=m[0],
            window_margin_s=m[1],
            beam_size=int(m[2]) if len(m) > 2 else 1,
            silence_padding=not (len(m) > 3 and m[3] == 0),
        )
        for m in margins
    }
    hyps: dict[str, dict[str, str]] = {variant_name(m): {} for m in margins}
    times: dict[str, dict[str, list[float]]] = {variant_name(m): {} for m in margins}
    for rep in range(args.repeats + 1):
        for k, clip in enumerate(clips):
            order = margins[k % len(margins) :] + margins[: k % len(margins)]  # rotate who goes first
            for m in order:
                started = time.perf_counter()
                text = asr[m].transcribe_sync(clip.audio).text
                elapsed = time.perf_counter() - started
                name = variant_name(m)
                hyps[name][clip.name] = text
                if rep > 0:
                    times[name].setdefault(clip.set, []).append(elapsed)
        print(f"pass {rep} done", file=sys.stderr)
    sets = sorted({c.set for c in clips})
    results: dict[str, Any] = {"variants": {}, "clips": [], "repeats": args.repeats}
    print(f"{'variant':<14}" + "".join(f"{s + ' WER %':>14}{s + ' t50 s':>14}" for s in [*sets, "all"]))
    for m in margins:
        name = variant_name(m)
        row: dict[str, Any] = {}
        for s in [*sets, "all"]:
            chosen = [c for c in clips if s in ("all", c.set)]
            errors = sum(edit_distance(normalise(c.text), normalise(hyps[name][c.name])) for c in chosen)
            words = sum(len(normalise(c.text)) for c in chosen)
            spent = [t for c_set, ts in times[name].items() if s in ("all", c_set) for t in ts]
            row[s] = {
                "wer_pct": round(100 * errors / words, 2),
                "errors": errors,
                "words": words,
                "median_s": round(statistics.median(spent), 3),
                "mean_s": round(statistics.fmean(spent), 3),
            }
        row["fallbacks_to_full_window"] = asr[m].fallbacks
        row["transcriptions"] = len(clips) * (args.repeats + 1)
        results["variants"][name] = row
        print(
            f"{name:<14}"
            + "".join(f"{row[s]['wer_pct']:>14}{row[s]['median_s']:>14}" for s in [*sets, "all"])
            + f"   fallbacks {asr[m].fallbacks}/{row['transcriptions']}"
        )
    for c in clips:
        entry = {"set": c.set, "name": c.name, "seconds": round(len(c.audio) / RATE, 2), "reference": c.text}
        entry.update({name: hyps[name][c.name] for name in hyps})
        results["clips"].append(entry)
    differing = [e for e in results["clips"] if len({e[variant_name(m)] for m in margins}) > 1]
    print(f"\nclips whose text differs between variants: {len(differing)}")
    for e in differing:
        print(f"  {e['name']}: ref {e['reference']!r}")
        for m in margins:
            print(f"    {variant_name(m):<12} {e[variant_name(m)]!r}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
