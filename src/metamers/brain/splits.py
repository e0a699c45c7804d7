"""Train/test splits of stimuli, as explicit objects keyed by stimulus id.

Regression and RSA take the same :class:`Splits`, so both read out the same
sounds. :func:`legacy_splits` draws exactly as the published code does
(NumPy's legacy global generator, seeded once); :func:`random_splits` is the
modern generator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metamers.errors import ConfigError
from metamers.io import write_json_atomic


@dataclass(frozen=True)
class Split:
    """One split: the training and the test stimulus ids (in draw order).

    Parameters
    ----------
    train, test
        Disjoint stimulus ids.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    """A list of splits of one set of stimuli, and how it was drawn.

    Parameters
    ----------
    splits
        The splits.
    stimulus_ids
        The stimuli in the order the draws index.
    method
        ``"legacy"`` (:func:`legacy_splits`) or ``"permutation"`` (:func:`random_splits`).
    seed
        The seed of the draw.
    """

    splits: tuple[Split, ...]
    stimulus_ids: tuple[str, ...]
    method: str
    seed: int

    def __len__(self) -> int:
        return len(self.splits)

    def __iter__(self):
        return iter(self.splits)

    def indices(self, stimulus_ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each split's ``(train, test)`` row indices into ``stimulus_ids``.

        Parameters
        ----------
        stimulus_ids
            The order of the rows (e.g. of a feature matrix).

        Raises
        ------
        ConfigError
            A split's stimulus is not among ``stimulus_ids``.
        """
        index = {str(s): i for i, s in enumerate(stimulus_ids)}
        out = []
        for number, split in enumerate(self.splits):
            missing = [s for s in (*split.train, *split.test) if s not in index]
            if missing:
                raise ConfigError(
                    f"split {number} names {len(missing)} stimuli that are not in the data "
                    f"(e.g. {missing[0]!r})"
                )
            out.append(
                (
                    np.array([index[s] for s in split.train], dtype=int),
                    np.array([index[s] for s in split.test], dtype=int),
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (see :meth:`from_dict`)."""
        return {
            "method": self.method,
            "seed": self.seed,
            "stimulus_ids": list(self.stimulus_ids),
            "splits": [{"train": list(s.train), "test": list(s.test)} for s in self.splits],
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Splits:
        """Rebuild splits from :meth:`to_dict`'s form.

        Parameters
        ----------
        record
            The dictionary.
        """
        try:
            return cls(
                tuple(Split(tuple(s["train"]), tuple(s["test"])) for s in record["splits"]),
                tuple(record["stimulus_ids"]),
                str(record["method"]),
                int(record["seed"]),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a splits record (missing {exc})") from None

    def save(self, path: str | Path) -> Path:
        """Write the splits as JSON, atomically.

        Parameters
        ----------
        path
            Destination ``.json`` file.
        """
        write_json_atomic(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        """Read splits written by :meth:`save`.

        Parameters
        ----------
        path
            A ``.json`` file.
        """
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read splits from {path}: {exc}") from None
        return cls.from_dict(record)


def _check_sizes(n: int, n_train: int, n_test: int) -> None:
    if n_train < 3 or n_test < 3 or n_train + n_test > n:
        raise ConfigError(
            f"cannot split {n} stimuli into {n_train} train + {n_test} test "
            "(each at least 3, together at most all)"
        )


def legacy_splits(
    stimulus_ids: Sequence[str],
    *,
    n_splits: int = 10,
    n_train: int = 83,
    n_test: int = 82,
    seed: int = 0,
) -> Splits:
    """Splits drawn exactly as the published code draws them.

    ``np.random.seed(seed)`` once, then per split
    ``train = np.random.choice(n, n_train, replace=False)`` and
    ``test = np.random.choice(list(set(range(n)) - set(train)), n_test, replace=False)``
    -- here with a private ``RandomState``, so the global generator is untouched.

    Parameters
    ----------
    stimulus_ids
        The stimuli in their canonical order (NH2015: ``neural_stim_meta.npy``'s).
    n_splits, n_train, n_test
        Number and sizes of the splits.
    seed
        0 in Tuckute, Feather et al. 2023; 3882 in Feather et al. 2023.

    Examples
    --------
    >>> ids = [f"s{i}" for i in range(165)]
    >>> legacy_splits(ids, seed=0).splits[0].train[:3]
    ('s45', 's51', 's108')
    """
    ids = tuple(str(s) for s in stimulus_ids)
    _check_sizes(len(ids), n_train, n_test)
    state = np.random.RandomState(seed)
    splits = []
    for _ in range(n_splits):
        train = state.choice(len(ids), size=n_train, replace=False)
        rest = list(set(range(len(ids))) - set(train.tolist()))
        test = state.choice(rest, size=n_test, replace=False)
        splits.append(Split(tuple(ids[i] for i in train), tuple(ids[i] for i in test)))
    return Splits(tuple(splits), ids, "legacy", int(seed))


def random_splits(
    stimulus_ids: Sequence[str],
    *,
    n_splits: int = 10,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Splits:
    """Random splits from NumPy's modern generator (one permutation per split).

    Parameters
    ----------
    stimulus_ids
        The stimuli.
    n_splits
        Number of splits.
    n_train, n_test
        Sizes (default: half, rounded up, for training; the rest for testing).
    seed
        Seed of ``numpy.random.default_rng``.
    """
    ids = tuple(str(s) for s in stimulus_ids)
    n_train = (len(ids) + 1) // 2 if n_train is None else n_train
    n_test = len(ids) - n_train if n_test is None else n_test
    _check_sizes(len(ids), n_train, n_test)
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        order = rng.permutation(len(ids))
        splits.append(
            Split(
                tuple(ids[i] for i in order[:n_train]),
                tuple(ids[i] for i in order[n_train : n_train + n_test]),
            )
        )
    return Splits(tuple(splits), ids, "permutation", int(seed))
