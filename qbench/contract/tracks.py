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
    #: the attack suite: (attack name, options); the worst case is taken over all of them
    attacks: tuple[tuple[str, dict], ...]
    epsilons: tuple[float, ...]
    #: epsilons of the robustness curves (leaderboard plots)
    sweep: tuple[float, ...] = ()
    #: the paper's own protocol, shown beside the adaptive worst case: (attack label, epsilon)
    paper_protocol: tuple[str, float] | None = None
    #: evaluate on the first n_test test examples unless --n-test says otherwise (None: all)
    n_test: int | None = None
    #: the readout of a deployed quantum classifier: single shots per prediction (None: exact probabilities)
    shots: int | None = None
    #: the suite as a cascade at the ranking epsilon: these attacks run on every example, the others only
    #: on the examples still standing after them (``Plan.cascade_gates``; empty: no cascade)
    cascade_gates: tuple[str, ...] = ()
    #: the curves carried up the epsilons (``Plan.cascade_curves``): a curve attack's cell at a sweep
    #: epsilon runs only where its smaller epsilon left an example above zero
    cascade_curves: bool = False


# QNN track: Huang & Zhang 2023 section 4.1 — BIM, 3 steps of 0.05, epsilon 0.15, with the attacker using
# the noisy model's gradient as it is (one sample): that is bim[n_eot=1]. The rest is the adaptive suite
# (EOT on stochastic models, AutoAttack's APGD pair, two gradient-free attacks, two transfer attacks).
QNN_SUITE = (
    ("fgsm", {}),
    ("bim", {"n_eot": 1}),
    ("bim", {}),
    ("pgd", {}),
    ("mim", {}),
    ("apgd-ce", {}),
    ("apgd-dlr", {}),
    ("square", {}),
    ("nes", {}),
    # exhaustive search of the epsilon-ball on inputs of 2-4 dimensions (skipped above), AutoAttack's APGD-T
    ("grid-search", {}),
    ("apgd-t", {}),
    ("transfer-fnn", {}),
    ("transfer-cnn", {}),
    # transfer from the undefended twin: needs nothing from the defense, so gradient masking cannot hide
    ("twin-pgd", {}),
    ("twin-apgd-ce", {}),
)

# Mapped-DNN track: QNAD's threat model (FGSM and PGD crafted on the noiseless DNN, evaluated on the noisy
# mapping), then the adaptive suite through the noisy mapping (EOT).
MAPPED_DNN_SUITE = (
    ("noiseless-fgsm", {}),
    ("noiseless-pgd", {}),
    ("fgsm", {}),
    ("pgd", {}),
    ("apgd-ce", {}),
    ("apgd-dlr", {}),
    ("apgd-t", {}),
    ("square", {}),
    ("twin-pgd", {}),
    ("twin-apgd-ce", {}),
)

DEFAULTS = {
    QNN: TrackDefaults(
        dataset="moons", model="qnn", attacks=QNN_SUITE, epsilons=(0.15,),
        sweep=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), paper_protocol=("bim[n_eot=1]", 0.15),
        # the seed paper's J = 50 single-shot measurements per prediction (algorithm 2), for every defense
        shots=50,
        # the one-step and BIM/PGD/MIM attacks (the paper-protocol column among them, and the
        # iterative-vs-one-step check's inputs) and APGD-CE (the apgd-weaker-than-pgd check) run on every
        # example; APGD-DLR, Square, NES, the exhaustive search, APGD-T and the four transfer attacks only
        # where those left an example standing (issue 17; entries computed before keep their protocol)
        cascade_gates=("fgsm", "bim[n_eot=1]", "bim", "pgd", "mim", "apgd-ce"),
        cascade_curves=True,
    ),
    MAPPED_DNN: TrackDefaults(
        dataset="mnist", model="lenet", attacks=MAPPED_DNN_SUITE, epsilons=(0.1,),
        sweep=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), paper_protocol=("noiseless-pgd", 0.1),
        # the adaptive attacks run EOT through a noisy CNN: 1000 images keep a cell to minutes on 2 cores
        n_test=1000,
        # QNAD's two noiseless attacks (the paper-protocol column), FGSM, and PGD and APGD-CE (the
        # apgd-weaker-than-pgd check) run on every example; APGD-DLR, APGD-T, Square and the twin attacks
        # only where those left an example standing: on a noisy AlexNet, 0-2% of them after PGD (issue 17)
        cascade_gates=("noiseless-fgsm", "noiseless-pgd", "fgsm", "pgd", "apgd-ce"),
        # and the PGD curves, which cost what the ranking epsilon's PGD costs at each sweep epsilon
        cascade_curves=True,
    ),
}
