"""Options shared by the defenses that run a trained DNN through an IBM backend's noise (DESIGN section 7)."""

from __future__ import annotations

from dataclasses import dataclass

from qbench import hardware


@dataclass(frozen=True)
class HardwareConfig:
    """Which backend, how its read-back is characterised, and what is mapped onto qubits."""

    backend: str = hardware.DEFAULT_BACKEND
    shots: int = hardware.DEFAULT_SHOTS
    grid: int = hardware.DEFAULT_GRID
    repeats: int = hardware.DEFAULT_REPEATS
    weights: bool = True
    activations: bool = True

    def validate(self) -> None:
        if self.shots < 1 or self.grid < 3 or self.repeats < 2:
            raise ValueError("shots >= 1, grid >= 3 and repeats >= 2 are required")
        hardware.canonical_backend_name(self.backend)


def characterisation(config: HardwareConfig, ctx, ks: tuple[int, ...] = ()) -> "hardware.Characterisation":
    """The backend's characterisation (cached under the run's cache folder).

    Always with the default CNOT-pair counts plus ``ks``, so ``intrinsic_noise`` and ``qnad`` share one
    cached characterisation (its intrinsic part is the same circuit).
    """
    ks = tuple(sorted(set(hardware.DEFAULT_KS) | set(ks)))
    cache = ctx.cache_dir / "hardware" if ctx.cache_dir else None
    with ctx.progress.task(f"characterising {config.backend} on qiskit-aer (cached)", total=None):
        return hardware.characterise(
            config.backend, grid=config.grid, shots=config.shots, repeats=config.repeats, ks=ks, cache_dir=cache
        )
