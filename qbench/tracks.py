"""The two leaderboard tracks, and what belongs to each by default."""

from __future__ import annotations

from dataclasses import dataclass

QNN = "qnn"
MAPPED_DNN = "mapped-dnn"
TRACKS = (QNN, MAPPED_DNN)


@dataclass(frozen=True)
class TrackDefaults:
    """What `qbench evaluate` uses on a track when the user names nothing else."""

    dataset: str
    model: str
    attacks: tuple[str, ...]
    epsilons: tuple[float, ...]


# The QNN track's protocol comes from Huang & Zhang 2023 section 4.1 (epsilon 0.15); the attack list grows
# as attack plugins land, and names that are not installed are dropped with a notice.
DEFAULTS = {
    QNN: TrackDefaults(dataset="moons", model="qnn", attacks=("fgsm",), epsilons=(0.15,)),
    MAPPED_DNN: TrackDefaults(dataset="mnist", model="lenet", attacks=("fgsm",), epsilons=(0.1,)),
}
