"""``metamers corpus build | info``: the spoken-word corpus behind ``bundled:words``."""

from __future__ import annotations

from pathlib import Path

import typer

from metamers.cli.app import app
from metamers.cli.common import console, emit, progress_bar

corpus_app = typer.Typer(
    help="The spoken-word corpus (bundled:words): build it offline with eSpeak NG, or describe it."
)
app.add_typer(corpus_app, name="corpus")

ROOT_HELP = (
    "Parent folder of corpora (default $METAMERS_CACHE/corpora or ~/.cache/metamers/corpora)."
)


def _counts(corpus) -> list[dict]:
    table = corpus.manifest
    counts = table.groupby(["split", "kind"]).size().rename("clips").reset_index()
    return counts.to_dict("records")


@corpus_app.command("build")
def build_command(
    root: Path = typer.Option(None, "--root", help=ROOT_HELP),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Synthesise the corpus (about 15 s on 2 cores; kept in the cache, built once)."""
    from metamers.stimuli.words import WordCorpusSettings, build_word_corpus, default_corpus_root

    settings = WordCorpusSettings()
    folder = Path(root or default_corpus_root()) / f"words-{settings.key()}"
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        corpus = build_word_corpus(folder, settings, progress=report)
    console.print(f"word corpus in {corpus.root}")
    emit(_counts(corpus), fmt)


@corpus_app.command("info")
def info_command(
    root: Path = typer.Option(None, "--root", help=ROOT_HELP),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Where the corpus is and how many clips each split holds (an error if it is not built)."""
    from metamers.stimuli.words import word_corpus

    corpus = word_corpus(root, build=False)
    console.print(f"word corpus in {corpus.root}")
    emit(_counts(corpus), fmt)
