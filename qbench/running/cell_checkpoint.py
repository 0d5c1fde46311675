"""Cell checkpoints: an attack cell longer than a session resumes after the last batch it finished, bit for bit.

An attack cell runs its attack on the evaluation batches one after the other (``eval_batch_size``
examples each). Some cells take longer than a session's 3 hours on one core: the Square Attack's 1000
queries x EOT-20 x 10 Pauli trajectories on a depolarized 8-qubit MNIST classifier is about 3.3 hours of
one core, so a run stopped with the session lost it every time and the cell could never finish. So after
a batch (at most every ``$QBENCH_CHECKPOINT_SECONDS``, as trainings), the cell saves the adversarial
points of the batches done and every RNG the rest of the attack draws from (the cell context's generators
and the global torch/numpy/python RNGs that ART draws from); a resumed cell restores them and attacks the
remaining batches, so its points, and its stored bits, are those of an uninterrupted run (a test checks
it). What else an attack could carry from one batch to the next would break that: the built-in attacks
keep nothing (transfer surrogates are trained from a stream of their own and cached by content), and a
plugin whose model or attack keeps its own generator across batches is outside this guarantee.

The file is the training checkpoint's format (:class:`qbench.contract.checkpoint.Checkpoint`, loop 1,
"epoch" = batches done) under the cell's key in the same folder, so the published store carries it to the
next machine exactly as it carries a training's (``qbench store export`` / ``import``), and it is removed
once the cell is stored. Its ``meta`` names the training's spec (the board it belongs to), the number of
examples attacked and the batch size: a file whose numbers differ is set aside and the cell starts over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qbench.contract.checkpoint import Checkpoint, checkpoint_interval, restore_rng, rng_state
from qbench.contract.context import Context

#: the state name the points are saved under
POINTS = "points"


class CellProgress:
    """The checkpoint of one attack cell's batches: what a resumed cell restores, and the saves after each batch."""

    def __init__(self, path: Path, key: str, n_examples: int, batch_size: int, meta: dict[str, Any],
                 every_s: float | None = None) -> None:
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.checkpoint = Checkpoint(
            path, key, checkpoint_interval() if every_s is None else every_s,
            meta={**meta, "cell": True, "n_examples": n_examples, "batch_size": batch_size}, subject="cell",
        )
        #: batches restored from the checkpoint (0: the cell starts from its first batch)
        self.batches_resumed = 0

    @property
    def n_batches(self) -> int:
        """The cell's batches: ``ceil(n_examples / batch_size)``."""
        return -(-self.n_examples // self.batch_size)

    def resume(self, ctx: Context) -> list[torch.Tensor]:
        """The points of the batches a checkpoint holds, one tensor per batch (none without a usable one),
        with the RNGs put back as they were after its last batch."""
        ckpt = self.checkpoint
        saved = ckpt._state
        if saved is None:
            return []
        ckpt._state = None  # restored once; free the memory
        meta = saved.get("meta") or {}
        done = int(saved["epoch"])
        if (meta.get("n_examples"), meta.get("batch_size")) != (self.n_examples, self.batch_size) or saved["loop"] != 1:
            ckpt.discard(f"saved for {meta.get('n_examples')} examples in batches of {meta.get('batch_size')}, "
                         f"this cell has {self.n_examples} in batches of {self.batch_size}")
            return []
        points = saved["states"].get(POINTS, {}).get(POINTS)
        expected = min(done * self.batch_size, self.n_examples)
        if not isinstance(points, torch.Tensor) or len(points) != expected or not 0 < done < self.n_batches:
            ckpt.discard(f"it holds {None if points is None else len(points)} points after {done} batches")
            return []
        before = rng_state([ctx])
        try:
            restore_rng([ctx], saved["rng"])
        except Exception as exc:  # noqa: BLE001 - put back what was there, then start over
            restore_rng([ctx], before)
            ckpt.discard(f"its RNG state could not be restored ({type(exc).__name__}: {exc})")
            return []
        self.batches_resumed = done
        return list(points.split(self.batch_size))

    def save(self, parts: list[torch.Tensor], ctx: Context) -> bool:
        """Save the points of the batches done (``parts``) and the RNGs now, unless the last save is too recent."""
        if not parts or len(parts) >= self.n_batches or not self.checkpoint.due():
            return False  # nothing yet, the cell is about to be stored anyway, or the last save is recent
        points = torch.cat(parts).detach().cpu()
        return self.checkpoint.save(1, len(parts), {POINTS: {POINTS: points}}, rng_state([ctx]))

    @property
    def resumed_seconds(self) -> float:
        """Seconds the saved run had spent on the cell before it stopped (0 without a checkpoint)."""
        return self.checkpoint.resumed_seconds if self.batches_resumed else 0.0

    def info(self) -> dict[str, Any] | None:
        """What the cell's record says about the resume (None: it ran in one go)."""
        if not self.batches_resumed:
            return None
        return {"batches": self.batches_resumed, "of": self.n_batches, "seconds_before": round(self.resumed_seconds, 1),
                "platform": self.checkpoint.saved_meta.get("platform")}

    def clear(self) -> None:
        """Remove the file (the cell is stored)."""
        self.checkpoint.clear()
