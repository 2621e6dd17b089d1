"""torch.distributed plumbing shared by every training stage: one process or many, same code.

Why manual gradient averaging instead of DistributedDataParallel: the streaming stages call the
model several times per optimiser step (prefill, cache updates, windows, a rollout where only
some calls carry gradients); DDP expects one forward per backward. Averaging the flattened
gradients once per step is exact, works for any call pattern, and costs one all-reduce.

Under `torchrun` the env (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) selects the process
group: gloo on CPU, nccl on CUDA. Without it everything runs in one process with no group.
Only rank 0 logs losses, writes checkpoints and shows progress bars.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as torch_dist

from engine.files import atomic_write

log = logging.getLogger(__name__)


@dataclass
class Dist:
    """Where this process sits in the job; every collective is a no-op when world == 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.backend is not None

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def mean(self, value: float | torch.Tensor) -> float:
        """Average a scalar over ranks (for logging)."""
        t = torch.as_tensor(value, dtype=torch.float64).detach().clone().reshape(1).to(self._comm_device)
        if self.active:
            torch_dist.all_reduce(t)
            t /= self.world
        return float(t.item())

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average .grad over ranks in one flat all-reduce (params without grad count as zeros)."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]).to(self._comm_device)
        torch_dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.device, p.dtype).clone()
            offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Make every rank start from rank 0's weights (seeded init already agrees; this makes it certain)."""
        if not self.active:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            buf = tensor.data.to(self._comm_device)
            torch_dist.broadcast(buf, 0)
            tensor.data.copy_(buf.to(tensor.device))

    def assert_in_sync(self, module: torch.nn.Module, what: str = "model") -> None:
        """Fail loudly if the ranks' weights have drifted apart (a missed gradient average would do it)."""
        if not self.active:
            return
        with torch.no_grad():
            sums = torch.stack([p.double().sum() for p in module.parameters()]).to(self._comm_device)
        lo, hi = sums.clone(), sums.clone()
        torch_dist.all_reduce(lo, op=torch_dist.ReduceOp.MIN)
        torch_dist.all_reduce(hi, op=torch_dist.ReduceOp.MAX)
        if not torch.equal(lo, hi):
            raise RuntimeError(f"{what} weights differ between ranks (max checksum gap {float((hi - lo).abs().max()):.3g})")

    def progress(self, total: int, initial: int = 0, desc: str = ""):
        """A tqdm bar on rank 0, a silent one elsewhere."""
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.is_main, dynamic_ncols=True,
                    mininterval=1.0)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def setup(device: str | None = None, threads: int | None = None) -> Dist:
    """Join the torchrun job if there is one; choose the device and the torch thread count."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if want_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
        cores = os.cpu_count() or 1
        torch.set_num_threads(threads or max(1, cores // world))
    backend = None
    if world > 1:
        backend = "nccl" if want_cuda else "gloo"
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend=backend, rank=rank, world_size=world)
    d = Dist(rank=rank, world=world, local_rank=local, device=dev, backend=backend)
    configure_logging(d)
    return d


def teardown(d: Dist) -> None:
    """Leave the process group; a torchrun worker that ends normally then exits at once (status 0).

    Why exit here: gloo's threads (gloo_tcp_loop, pt_gloo_runloop) can outlive destroy_process_group
    when something still holds the backend (seen after the DMD stage, in /proc/self/task), and C++
    then destroys them during interpreter shutdown, where a still-joinable std::thread aborts the
    process now and then ("terminate called without an active exception", SIGABRT, rank 1, after
    training had finished). Here every collective is done (barrier) and every file is closed, so
    skipping Python's shutdown loses nothing. An exception on its way out is left to propagate.
    """
    if d.active and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
        if sys.exc_info()[0] is None:
            _exit_worker()


def _exit_worker() -> None:
    """Flush what Python buffers (logs, stdout, stderr) and end the process without its shutdown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def configure_logging(d: Dist) -> None:
    """INFO on rank 0, warnings only elsewhere (so two ranks do not print every line twice)."""
    logging.basicConfig(level=logging.INFO if d.is_main else logging.WARNING,
                        format=f"%(asctime)s [rank {d.rank}] %(name)s: %(message)s")


def step_seed(seed: int, step: int, rank: int, salt: int = 0) -> int:
    """A seed for (step, rank): resumed runs and reruns draw exactly the same batches and noise."""
    return int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(
        (seed * 1_000_003 + step) * 1_009 + rank * 7_919 + salt * 104_729)).item())


def generator(seed: int, step: int, rank: int, salt: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, step, rank, salt))
    return g


class JsonlLog:
    """Append-only JSON lines (one per logged step), written by rank 0 only."""

    def __init__(self, path: str | Path, d: Dist):
        self.path, self.d = Path(path), d
        self.t0 = time.time()
        if d.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, **values: float) -> None:
        if not self.d.is_main:
            return
        record = {"step": step, **{k: v if isinstance(v, int) else round(float(v), 6) for k, v in values.items()},
                  "elapsed_s": round(time.time() - self.t0, 2)}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def save_checkpoint(path: str | Path, state: dict[str, Any], d: Dist) -> None:
    """Rank 0 writes atomically (temp + rename); everybody waits so nobody reads a half-written file."""
    if d.is_main:
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    d.barrier()


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The saved training state, or None when there is none (weights-only: no code is unpickled)."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(str(path), map_location="cpu", weights_only=True)


def read_losses(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
