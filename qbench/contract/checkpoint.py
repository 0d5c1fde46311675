"""Training checkpoints: a training stopped between epochs resumes where it stopped, bit for bit.

A Madry-trained AlexNet takes hours on a CPU core, longer than one session on this project's machines,
and a process that is killed loses what it computed. So the runner hands every training a
:class:`Checkpoint` (``ctx.checkpoint``), and the epoch loops of :func:`qbench.contract.training.train`
(and any plugin loop written with :func:`resumable_epochs`) save, at the end of an epoch, everything the
rest of the training depends on: the model's and the optimiser's state dicts, the context's torch and
numpy generators, and the global torch/numpy/python RNGs (which libraries draw from). Resuming restores
them all, so the finished weights are those of an uninterrupted run (a test checks it bit for bit).

A ``fit`` may run several loops one after the other (a per-epoch loop around one-epoch ``train`` calls,
pre-training then fine-tuning). Loops are numbered in the order they start; a checkpoint records its
loop's number and the epochs done. On resume, loops before the saved one run again from the start
(training is deterministic, so they reproduce what they did), the saved loop continues from its epoch, and
no loop overwrites a checkpoint that is further along than itself. A loop started inside another loop's
epoch is not checkpointed: the outer loop owns the checkpoint.

Hand-written because no library here does it: torch saves state dicts, but knowing *which* states a
training's future depends on (its generators, the global RNGs ART and dropout draw from) is qbench's.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch

from qbench.errors import UsageError

# (a qbench.contract.context.Context, by duck typing: context.py imports this module for its field type)
Context = Any

#: bumped when the saved layout changes; a checkpoint of another format is ignored (the training restarts)
FORMAT = 1
#: the environment variable setting the least seconds between two checkpoints of a training
ENV_VAR = "QBENCH_CHECKPOINT_SECONDS"


def checkpoint_interval() -> float:
    """Least seconds between two checkpoints of a training: ``$QBENCH_CHECKPOINT_SECONDS``, else 300."""
    raw = os.environ.get(ENV_VAR, "300")
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{ENV_VAR}={raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise UsageError(f"{ENV_VAR}={raw!r}: the interval must be 0 or more seconds")
    return value


class Stateful(Protocol):
    """Anything whose state round-trips through ``state_dict`` / ``load_state_dict`` (modules, optimisers)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


class Checkpoint:
    """One training's checkpoint file (written atomically), identified by the training's key.

    ``every_s`` is the least time between two saves (0: at every epoch); saving only changes what a
    resumed run can skip, never a result. ``meta`` is stored beside the state (the runner puts the
    training's spec and platform there, so the published store can place the file on its board and the
    resumed record can say where the first part ran). ``context``, when set (the runner sets the training's
    own), has its generators saved and restored too, also when a loop runs on a child context.

    A checkpoint never fails a training: an unreadable, foreign or unrestorable file is set aside with a
    warning and the training starts over; a save that fails (a full disk) or whose state could not be read
    back (a plugin's state torch cannot load safely) is skipped with a warning.
    """

    def __init__(self, path: Path, key: str, every_s: float = 0.0, meta: dict | None = None,
                 context: Context | None = None, subject: str = "training") -> None:
        self.path = Path(path)
        #: what the file checkpoints ("training", "cell"), for the warnings
        self.subject = subject
        self.key = key
        self.every_s = every_s
        self.meta = dict(meta or {})
        self.context = context
        #: the position (loop number, epochs done) of the checkpoint read at the start, if any
        self.loaded_at: tuple[int, int] | None = None
        #: training seconds the saved run had spent before it stopped (0 without a checkpoint)
        self.resumed_seconds = 0.0
        #: the saved run's ``meta`` (e.g. its platform), empty without a checkpoint
        self.saved_meta: dict = {}
        #: what went wrong with checkpointing this training, if anything (also logged as warnings)
        self.problems: list[str] = []
        self._state = self._read()
        if self._state is not None:
            self.loaded_at = (self._state["loop"], self._state["epoch"])
            self.resumed_seconds = float(self._state["seconds"])
            self.saved_meta = dict(self._state.get("meta") or {})
        self._loops = 0
        self._depth = 0
        self._verified = False
        self._disabled = False
        self._started = time.perf_counter()
        self._last_save = self._started

    def _warn(self, message: str) -> None:
        self.problems.append(message)
        logging.getLogger("qbench").warning("checkpoint %s: %s", self.path.name, message)

    def _read(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: restart rather than fail the training
            self._warn(f"unreadable ({type(exc).__name__}), ignored: the {self.subject} starts over")
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("key") != self.key:
            self._warn(f"not a checkpoint of this {self.subject} (format or key), ignored: the {self.subject} starts over")
            return None
        if state.get("torch") != str(torch.__version__):
            # another torch need not reproduce the same floats: do not splice two builds' runs
            self._warn(f"written by torch {state.get('torch')}, this is {torch.__version__}: ignored")
            return None
        return state

    def discard(self, reason: str) -> None:
        """Forget the checkpoint read at the start (it could not be restored): the training starts over."""
        self._warn(f"{reason}: the {self.subject} starts over")
        self.loaded_at, self._state, self.resumed_seconds, self.saved_meta = None, None, 0.0, {}

    @property
    def epoch_resumed(self) -> int | None:
        """The epochs the saved loop had done when the checkpoint was read (None: no checkpoint)."""
        return None if self.loaded_at is None else self.loaded_at[1]

    def seconds(self) -> float:
        """Training seconds so far, the saved run's included."""
        return self.resumed_seconds + time.perf_counter() - self._started

    def due(self) -> bool:
        """Whether a save now would be written (the interval since the last one has passed)."""
        return not self._disabled and time.perf_counter() - self._last_save >= self.every_s

    def save(self, loop: int, epoch: int, states: dict[str, dict], rng: dict[str, Any], force: bool = False) -> bool:
        """Write the checkpoint at (``loop``, ``epoch`` done) unless one further along was read, or too soon."""
        if self._disabled or (self.loaded_at is not None and (loop, epoch) <= self.loaded_at):
            return False
        now = time.perf_counter()
        if not force and now - self._last_save < self.every_s:
            return False
        payload = {"format": FORMAT, "key": self.key, "torch": str(torch.__version__), "loop": loop, "epoch": epoch,
                   "seconds": self.seconds(), "meta": self.meta, "states": states, "rng": rng}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        if not self._verified:
            try:  # what cannot be loaded back safely would make every later session start over, silently
                torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
            except Exception as exc:
                self._disabled = True
                self._warn(f"the {self.subject}'s state cannot be loaded back safely ({str(exc).splitlines()[-1][:200]}); "
                           f"this {self.subject} is not checkpointed")
                return False
            self._verified = True
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(buffer.getvalue())
            tmp.replace(self.path)
        except OSError as exc:  # a full disk must not cost the training itself
            tmp.unlink(missing_ok=True)
            self._warn(f"not saved ({exc})")
            return False
        self._last_save = now
        return True

    def clear(self) -> None:
        """Remove the file (the training finished and its weights are stored)."""
        self.path.unlink(missing_ok=True)


def read_meta(path: Path) -> dict | None:
    """(Without restoring anything) the key, position and meta of a checkpoint file, or None if unreadable."""
    if not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            return None
        return {"key": state["key"], "loop": state["loop"], "epoch": state["epoch"], "seconds": state["seconds"],
                "torch": state.get("torch"), "meta": dict(state.get("meta") or {})}
    except Exception:  # unreadable, or a file claiming the format without its fields
        return None


def further_along(source: Path, target: Path) -> bool:
    """Whether checkpoint ``source`` is usable by this torch and ahead of ``target`` (or ``target`` is absent
    or unreadable): the rule every copy of a checkpoint between stores follows, so none moves backwards."""
    meta = read_meta(source)
    if meta is None or meta["torch"] != str(torch.__version__):
        return False
    old = read_meta(target) if Path(target).exists() else None
    if old is None or old["key"] != meta["key"] or old["torch"] != meta["torch"]:
        return True
    return (meta["loop"], meta["epoch"]) > (old["loop"], old["epoch"])


def _plain(value: Any) -> Any:
    """numpy arrays inside an RNG state as tensors: ``torch.load(weights_only=True)`` refuses numpy objects."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.astype(np.int64).tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _numpy(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        raw = value["__ndarray__"]  # a list of ints; the first layout (be4b6b1-eff79d2) stored a CPU tensor
        return np.asarray(raw if isinstance(raw, list) else raw.tolist(), dtype=np.int64).astype(value["dtype"])
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return value


def _contexts(ctx: Context, ckpt: Checkpoint) -> list[Any]:
    """The loop's context and the training's own (when they differ): every generator a loss may draw from."""
    return [ctx] if ckpt.context is None or ckpt.context is ctx else [ctx, ckpt.context]


def rng_state(contexts: list[Any]) -> dict[str, Any]:
    """Every RNG a computation may draw from: the contexts' torch and numpy generators, the global torch,
    numpy and python RNGs (and CUDA's once in use), in a form ``torch.load(weights_only=True)`` reads back."""
    state = {
        "generators": [c.generator.get_state() for c in contexts],
        "numpy_ctx": [_plain(c.rng.bit_generator.state) for c in contexts],
        "torch": torch.get_rng_state(),
        "numpy": _plain(np.random.get_state(legacy=False)),
        "python": random.getstate(),
    }
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(contexts: list[Any], state: dict[str, Any]) -> None:
    """Put back the RNGs :func:`rng_state` captured, into ``contexts`` (the same number, in the same order)."""
    if "generator" in state:  # the first layout (2026-12-02, be4b6b1-1afd588): the loop's context only
        state = {**state, "generators": [state["generator"]], "numpy_ctx": [state["numpy_ctx"]]}
    if len(state["generators"]) != len(contexts):
        raise ValueError(f"the checkpoint holds {len(state['generators'])} contexts' generators, the loop has {len(contexts)}")
    for c, generator, numpy_state in zip(contexts, state["generators"], state["numpy_ctx"]):
        c.generator.set_state(generator)
        c.rng.bit_generator.state = _numpy(numpy_state)
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy(state["numpy"]))
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def resumable_epochs(ctx: Context, epochs: int, **stateful: Stateful) -> Iterator[int]:
    """``range(epochs)`` that saves ``stateful`` and the RNGs after each epoch and resumes from a checkpoint.

    Name every object the rest of the training depends on (``model=..., optimizer=...``); the names key
    the saved states. Without ``ctx.checkpoint`` (outside a runner training) it is a plain range. Code
    after the loop runs as usual; code *inside* an epoch must leave nothing behind but those states.
    """
    ckpt: Checkpoint | None = getattr(ctx, "checkpoint", None)
    if ckpt is None or ckpt._depth > 0:
        yield from range(epochs)
        return
    ckpt._loops += 1
    loop = ckpt._loops
    start = 0
    contexts = _contexts(ctx, ckpt)
    if ckpt.loaded_at is not None and ckpt.loaded_at[0] == loop and ckpt._state is not None:
        start = _restore(ckpt, contexts, stateful)
    elif ckpt.loaded_at is not None and ckpt.loaded_at[0] > loop and loop == 1:
        ckpt._warn(f"the saved position is in loop {ckpt.loaded_at[0]}: the loops before it run again first")
    for epoch in range(start, epochs):
        ckpt._depth += 1  # a loop started inside this epoch is the epoch's business, not checkpointed
        try:
            yield epoch
        finally:
            ckpt._depth -= 1
        ckpt.save(loop, epoch + 1, {n: o.state_dict() for n, o in stateful.items()}, rng_state(contexts),
                  force=epoch + 1 == epochs)


def _restore(ckpt: Checkpoint, contexts: list[Any], stateful: dict[str, Stateful]) -> int:
    """Load the saved states and RNGs into the loop's objects; the epoch to continue from (0 if it cannot)."""
    saved = ckpt._state
    assert saved is not None
    ckpt._state = None  # restored once; free the memory
    if set(saved["states"]) != set(stateful):
        ckpt.discard(f"it holds {sorted(saved['states'])}, the loop names {sorted(stateful)}")
        return 0
    before = {name: copy.deepcopy(obj.state_dict()) for name, obj in stateful.items()}
    rng_before = rng_state(contexts)
    try:
        for name, obj in stateful.items():
            obj.load_state_dict(saved["states"][name])
        restore_rng(contexts, saved["rng"])
    except Exception as exc:  # put back what was loaded before the failure, then start over
        for name, obj in stateful.items():
            obj.load_state_dict(before[name])
        restore_rng(contexts, rng_before)
        ckpt.discard(f"could not be restored ({type(exc).__name__}: {exc})")
        return 0
    return int(saved["epoch"])
