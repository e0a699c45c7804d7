"""Print the word models' measured accuracies as the markdown table of docs/audio.md.

Run from the repository root: ``python scripts/word_models_table.py [weights_dir]``. Each
accuracy gets a 95 % Wilson interval over its clips (400 test clips; under attack, the
manifest's ``attacks.eval.clips``).
"""

from __future__ import annotations

import sys

from scipy.stats import binomtest

from metamers.models.words import read_word_manifest


def cell(p: float, n: int) -> str:
    """``p`` in percent with its 95 % Wilson interval over ``n`` clips.

    Parameters
    ----------
    p
        The accuracy (fraction).
    n
        Number of clips it was measured on.
    """
    ci = binomtest(round(p * n), n).proportion_ci(method="wilson")
    return f"{100 * p:.1f} [{100 * ci.low:.0f}, {100 * ci.high:.0f}]"


def main() -> None:
    """Print the table."""
    manifest = read_word_manifest(sys.argv[1] if len(sys.argv) > 1 else None)
    clips = manifest["attacks"]["eval"]["clips"]
    print("| model | clean test words | in noise (−10…+10 dB) | under PGD | train s |")
    print("|---|---|---|---|---|")
    for name, entry in manifest["models"].items():
        print(
            f"| `{name}` | {cell(entry['accuracy'], 400)} | {cell(entry['noisy_accuracy'], 400)} "
            f"| {cell(entry['robust_accuracy'], clips)} | {entry['train_seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
