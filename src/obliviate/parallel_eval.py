"""Data-parallel evaluation: the model passes of an evaluation split over the processes of a
launch (``torchrun --nproc_per_node N -m obliviate eval ...``), the results gathered in the
original order (docs/scale-out.md, "Data-parallel evaluation").

Every model pass of an evaluation cuts its work into batches in one place:
:func:`obliviate.scoring.score_encoded` (every teacher-forced score: TOFU, MUSE, the MCQ
benchmarks, the audit), :func:`obliviate.scoring.score_documents` (windows of long documents)
and :func:`obliviate.generation.run_batches` (greedy generation). The batches are the same
whatever the number of processes (length-sorted rows, ``batch_size`` at a time). Inside
:func:`data_parallel` they go through :func:`map_batches`: dealt to the ranks balanced by their
token count (:func:`assign`), each rank runs its own, and ``all_gather_object`` (gloo) hands
every batch's result to every rank, back in batch order. A batch is computed exactly as in one
process (same rows, same padding), so every per-sample value equals the one-process value, and
every rank continues with the same results: the metrics and the control flow (the passes that
follow) are those of one process, and only rank 0 writes files (:func:`is_writer`).

The mode is explicit: only an evaluation that every rank enters, inside ``data_parallel()``
(the ``eval``, ``muse eval``, ``wmdp`` and ``audit`` commands under torchrun, or
``obliviate.api.evaluate`` called by every rank inside ``with data_parallel():``), splits its
passes. Any other evaluation runs all its batches in its own process, without a collective,
even when a process group exists: an evaluation run by rank 0 alone (after training, in a
sweep, the early stop's scoring) never waits for the other ranks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the data-parallel evaluation under way."""

    rank: int
    world: int
    group: Any = None  # the gloo process group the results travel through (None: the default)


_ACTIVE: ContextVar[Ranks | None] = ContextVar("obliviate_data_parallel", default=None)


def current() -> Ranks | None:
    """The data-parallel evaluation this code runs in, or None (every batch runs here)."""
    return _ACTIVE.get()


def is_writer() -> bool:
    """Whether this process writes files and prints: always, except on the ranks other than 0
    of a data-parallel evaluation."""
    ranks = current()
    return ranks is None or ranks.rank == 0


def launched_world_size(environ: Any = None) -> int:
    """The number of processes a launcher (torchrun, accelerate launch) started: its
    ``WORLD_SIZE`` variable, 1 without one."""
    env = os.environ if environ is None else environ
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init_launch() -> bool:
    """For a command started by a launcher with several processes: join its process group
    (gloo, created here unless one exists) and return True; return False in a single process."""
    if launched_world_size() < 2:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return True


@contextmanager
def launched() -> Iterator[bool]:
    """An evaluation command's process: under a launcher with several processes (torchrun),
    join the process group, split the evaluations run inside (:func:`data_parallel`) and leave
    the group at the end (after a barrier, so that every rank exits with status 0 once rank 0
    has written). Yields whether this process prints: rank 0, or a single process."""
    started = init_launch()
    ok = False
    try:
        with data_parallel(started):
            yield is_writer()
        ok = True
    finally:
        if started:
            import torch.distributed as dist

            if ok:
                dist.barrier()
            dist.destroy_process_group()


@contextmanager
def data_parallel(enabled: bool = True) -> Iterator[Ranks | None]:
    """Split the model passes of the evaluations run inside over the ranks of the process group
    (see the module docstring). Every rank must enter with the same ``enabled`` and run the same
    evaluation. A no-op when ``enabled`` is false, without a process group, with one process, or
    when already inside."""
    if not enabled or current() is not None:
        yield current()
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        yield None
        return
    # python objects travel through gloo on the host, whatever the default backend is
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    ranks = Ranks(dist.get_rank(), dist.get_world_size(), group)
    token = _ACTIVE.set(ranks)
    try:
        yield ranks
    finally:
        _ACTIVE.reset(token)


def assign(costs: Sequence[int], world: int) -> list[int]:
    """The rank of each unit of work: the costliest first (ties: the first), each to the rank
    with the least work so far (ties: the lowest rank). Deterministic; a rank may get nothing."""
    if world < 1:
        raise ValueError(f"world size {world}: must be >= 1")
    load = [0] * world
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += costs[i]
    return owner


def share(costs: Sequence[int], rank: int, world: int) -> list[int]:
    """The units (indices, in order) that :func:`assign` gives to ``rank``."""
    return [i for i, r in enumerate(assign(costs, world)) if r == rank]


def merge(parts: Sequence[dict[int, R]], n: int) -> list[R]:
    """The results of ``n`` units in unit order, from each rank's ``{unit index: result}``;
    a unit missing or computed twice is an error."""
    out: dict[int, R] = {}
    for part in parts:
        for i, res in part.items():
            if i in out:
                raise RuntimeError(f"unit {i} of the evaluation was computed by two ranks")
            out[i] = res
    missing = [i for i in range(n) if i not in out]
    if missing or len(out) != n:
        raise RuntimeError(f"units {missing[:5]} of the evaluation were computed by no rank")
    return [out[i] for i in range(n)]


def map_batches(
    batches: Sequence[T],
    costs: Sequence[int],
    run: Callable[[T], R],
    progress: Callable[[list[int]], Iterable[int]] | None = None,
) -> list[R]:
    """``[run(b) for b in batches]``; inside :func:`data_parallel` each rank runs the batches
    :func:`assign` gives it (``costs``: their token counts) and every rank gets every result.
    ``progress`` wraps the indices of the batches this process runs (a progress bar); not on
    the ranks other than 0."""
    if len(costs) != len(batches):
        raise ValueError(f"{len(costs)} costs for {len(batches)} batches")
    ranks = current()
    if not batches:  # the same on every rank: nothing to exchange
        return []
    todo = list(range(len(batches))) if ranks is None else share(costs, ranks.rank, ranks.world)
    mine: dict[int, R] = {}
    for i in progress(todo) if progress is not None and is_writer() else todo:
        mine[i] = run(batches[i])
    if ranks is None:
        return [mine[i] for i in range(len(batches))]
    return merge(_all_gather(mine, (len(batches), sum(costs)), ranks), len(batches))


def _all_gather(mine: dict[int, Any], shape: tuple[int, int], ranks: Ranks) -> list[dict]:
    """Every rank's results; ranks that cut different work (another evaluation, other data)
    are an error, not a silent mix."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * ranks.world
    dist.all_gather_object(gathered, (shape, mine), group=ranks.group)
    shapes = [g[0] for g in gathered]
    if any(s != shapes[0] for s in shapes):
        raise RuntimeError(
            f"the ranks of a data-parallel evaluation cut different work ({shapes}): every "
            "rank must run the same evaluation on the same data and settings"
        )
    return [g[1] for g in gathered]


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` on every rank of a data-parallel evaluation (``value`` itself
    outside one): decisions such as "reuse the cached results" are taken once."""
    ranks = current()
    if ranks is None:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0, group=ranks.group)
    return box[0]


def on_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` run by rank 0 alone in a data-parallel evaluation (a write, or a check or read
    whose answer every rank must share), its value, or the bad-input error it raised, handed to
    every rank; simply ``fn()`` outside one."""
    ranks = current()
    if ranks is None:
        return fn()
    out: tuple[Any, BaseException | None] = (None, None)
    if ranks.rank == 0:
        try:
            out = (fn(), None)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            out = (None, exc)
    value, error = from_rank0(out)
    if error is not None:
        raise error
    return value


class LocalAccelerator:
    """What the training loop (:func:`obliviate.training.train_loop`) uses of an
    ``accelerate.Accelerator``, for a process that trains alone: no wrapping, no collective.
    Inside a data-parallel evaluation a training step of the evaluation (the audit's
    relearning attack) runs so on every rank, the same as in one process."""

    is_main_process = True
    process_index = 0
    num_processes = 1

    def __init__(self, device: Any) -> None:
        self.device = device

    def prepare(self, *objs: Any) -> Any:
        """Models moved to the device (in place: an optimiser keeps its parameters)."""
        import torch

        for obj in objs:
            if isinstance(obj, torch.nn.Module):
                obj.to(self.device)
        return objs[0] if len(objs) == 1 else objs

    def backward(self, loss: Any) -> None:
        loss.backward()

    def clip_grad_norm_(self, params: Any, max_norm: float) -> Any:
        import torch

        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def unwrap_model(self, model: Any) -> Any:
        return model

    def wait_for_everyone(self) -> None:
        pass


def current_local_accelerator() -> LocalAccelerator | None:
    """A :class:`LocalAccelerator` (on the GPU of this rank when there is one) inside a
    data-parallel evaluation; None elsewhere."""
    if current() is None:
        return None
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    return LocalAccelerator(torch.device("cuda", local_rank) if cuda else torch.device("cpu"))
