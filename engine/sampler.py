"""Streaming samplers: AvatarForcing's sliding local-future window, and the self-forcing baseline.

AvatarForcing: a window of up to L blocks sits at heterogeneous noise levels, newest noisiest. One
step adds a block of fresh noise, runs N model calls over the whole window (re-noising every block
one sub-level lower after each), and emits the oldest block once it is clean. The emitted block is
then run once more at the context timestep to write its keys into the cache (the temporal anchor).
Constant work per step, whatever the stream's length.

The model calls themselves are pure functions of what they are handed (`prefill_anchor`,
`update_anchor`, `window_step`): the samplers only decide which blocks go in, and training
(`engine.train.ode_backfill`) makes the very same calls from teacher states instead of noise.

Noise comes from `noise_fn(kind, block, shape)`; by default a seeded `torch.Generator`. Kinds:
"fresh" (a block entering the window) and "renoise" (moving a block to its next level).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .cache import StreamCache
from .config import StreamConfig
from .model import CausalDiT, Memory
from .schedule import FlowSchedule, schedule_for

NoiseFn = Callable[[str, int, tuple], torch.Tensor]
Observer = Callable[[str, dict], None]      # (kind, what the call was fed and gave): records and tests
TextKV = list[tuple[torch.Tensor, torch.Tensor]]


def plan_windows(n_blocks: int, window: int) -> list[tuple[int, int]]:
    """Blocks [start, end) of every window for a finite stream of n_blocks (warm-up, full, drain)."""
    return [(max(0, w - window + 1), min(n_blocks, w + 1)) for w in range(n_blocks + window - 1)]


@dataclass
class PendingBlock:
    index: int                 # block number in the stream (0 = first generated block)
    x: torch.Tensor            # (batch, B, C, h, w) noisy latent at its current level
    audio: torch.Tensor        # (batch, B*pack, audio_dim)
    level: int = 0             # index into the schedule's levels


@dataclass
class CallRecord:
    """What one model call was fed: for tests, benchmarks and parity checks."""

    kind: str                  # "prefill" | "denoise" | "update" | "context"
    frames: int                # query frames
    memory_frames: int         # cached frames attended to
    first_frame: int           # absolute latent frame of the first query frame
    timesteps: list[float]
    frame_pos: list[float]
    memory_pos: list[float]

    @classmethod
    def of(cls, kind: str, info: dict) -> CallRecord:
        """The record of a call from what an `Observer` is shown."""
        memory = info["memory"]
        return cls(kind, info["x"].shape[1], memory.frames if memory else 0, info["first_frame"],
                   info["t"][0].tolist(), info["frame_pos"].tolist(), memory.frame_pos.tolist() if memory else [])


# -- the model calls of a stream: functions of what they are handed -------------------------------
@dataclass
class Conditioning:
    """What every call of one stream reads besides its own frames.

    Handed to each call rather than kept in a sampler, so that training builds its windows with
    the stream's own calls: same conditioning channels, same anchors, same positions.
    """

    ref: torch.Tensor              # (batch, C, h, w) reference latent: the conditioning channels
    cache: StreamCache             # the style and temporal anchors (the one thing the calls write)
    text_kv: TextKV | None = None  # cross-attention keys of the text context (models with text)


def reference_cond(ref: torch.Tensor, frames: int, anchor: bool = False) -> torch.Tensor:
    """Conditioning channels: the reference latent on every frame + mask (0 on the anchor, 1 elsewhere)."""
    b, c, h, w = ref.shape
    refs = ref[:, None].expand(b, frames, c, h, w)
    return torch.cat([refs, refs.new_full((b, frames, 1, h, w), 0.0 if anchor else 1.0)], dim=2)


def _model_call(model: CausalDiT, cond: Conditioning, kind: str, x: torch.Tensor, t: torch.Tensor,
                audio: torch.Tensor, first_frame: int, frame_pos: torch.Tensor, memory: Memory | None,
                observe: Observer | None, anchor: bool = False) -> tuple[torch.Tensor, list, list]:
    """One model call; a denoising call keeps no keys unless someone observes them."""
    flow, k, v = model(x, reference_cond(cond.ref, x.shape[1], anchor), t, audio, frame_pos, memory, cond.text_kv,
                       return_kv=kind != "denoise" or observe is not None)
    if observe is not None:
        observe(kind, {"x": x, "t": t, "audio": audio, "flow": flow, "first_frame": first_frame, "keys": k,
                       "values": v, "frame_pos": frame_pos, "memory": memory})
    return flow, k, v


def _anchor_grad(cache: StreamCache) -> torch.set_grad_enabled:
    """Anchor calls build a graph only for a cache that keeps it (ODE backfill trains through them)."""
    return torch.set_grad_enabled(cache.keep_graph and torch.is_grad_enabled())


def prefill_anchor(model: CausalDiT, cond: Conditioning, audio: torch.Tensor, observe: Observer | None = None) -> None:
    """The style anchor: the reference frame alone at t=0; its un-rotated keys go into the cache.

    audio (batch, audio_pack, audio_dim): what the anchor frame hears (zeros unless the ablation
    `anchor_audio_zero=False` lets it hear the first block's first frame).
    """
    with _anchor_grad(cond.cache):
        t = cond.ref.new_zeros(cond.ref.shape[0], 1)
        _, k, v = _model_call(model, cond, "prefill", cond.ref[:, None], t, audio, 0, torch.zeros(1), None, observe,
                              anchor=True)
    cond.cache.set_anchor(k, v)


def update_anchor(model: CausalDiT, stream: StreamConfig, cond: Conditioning, x0: torch.Tensor, audio: torch.Tensor,
                  first_frame: int, kind: str = "update", observe: Observer | None = None) -> None:
    """The temporal anchor: a clean block at t=context_noise writes its keys into the cache.

    kind "update" is the stream's cache-update call (`official_update_anchor` gives it the authors'
    anchor at frame 0); "context" is the no-cache baseline rebuilding the same keys every window.
    """
    if cond.cache.capacity == 0:
        return
    official = kind == "update" and stream.official_update_anchor
    with _anchor_grad(cond.cache):
        t = x0.new_full(x0.shape[:2], float(stream.context_noise))
        memory = cond.cache.memory(first_frame, stream.style_anchor, stream.rope_reindex and not official)
        _, k, v = _model_call(model, cond, kind, x0, t, audio, first_frame, cond.cache.frame_positions(x0.shape[1]),
                              memory, observe)
    cond.cache.push(k, v, x0.shape[1])


def window_step(model: CausalDiT, stream: StreamConfig, schedule: FlowSchedule, cond: Conditioning,
                x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, first_frame: int,
                observe: Observer | None = None) -> torch.Tensor:
    """One denoising call over a window: x0 of its frames. Reads the cache, writes nothing.

    x (batch, F, C, h, w) at per-frame timesteps t (batch, F); audio (batch, F*audio_pack, audio_dim);
    first_frame: the absolute latent frame of x's first frame (1 = the first generated frame).
    """
    memory = cond.cache.memory(first_frame, stream.style_anchor, stream.rope_reindex)
    flow, _, _ = _model_call(model, cond, "denoise", x, t, audio, first_frame,
                             cond.cache.frame_positions(x.shape[1]), memory, observe)
    return schedule.x0_from_flow(x, flow, t)


# -- the samplers ---------------------------------------------------------------------------------
class _Base:
    """What both samplers share: setup, anchors, the cache-update call, noise, bookkeeping."""

    def __init__(self, model: CausalDiT, stream: StreamConfig, generator: torch.Generator | None = None,
                 noise_fn: NoiseFn | None = None, schedule: FlowSchedule | None = None):
        self.model, self.stream = model, stream
        self.schedule = schedule or schedule_for(stream)
        self.levels = self.schedule.levels(stream)
        self.generator = generator
        self._noise_fn = noise_fn
        self.cache = StreamCache(model.cfg.num_layers, stream.temporal_frames)
        self.calls: list[CallRecord] = []
        self.record_calls = False
        self.on_call: Observer | None = None   # observer of every model call (tests)
        self._started = False

    # -- setup ------------------------------------------------------------------------------------------
    @property
    def block_frames(self) -> int:
        return self.stream.block_frames

    @property
    def audio_rows_per_block(self) -> int:
        return self.stream.block_frames * self.model.cfg.audio_pack

    @property
    def ref(self) -> torch.Tensor:
        """The reference latent (batch, C, h, w) of the running stream."""
        return self.conditioning.ref

    @torch.no_grad()
    def start(self, reference_latent: torch.Tensor, text_context: torch.Tensor | None = None) -> None:
        """Encode the anchors for a new stream: reference latent (C, h, w) or (batch, C, h, w)."""
        cfg = self.model.cfg
        ref = reference_latent if reference_latent.ndim == 4 else reference_latent[None]
        if ref.ndim != 4 or ref.shape[1] != cfg.out_dim:
            raise ValueError(f"reference latent must be ({cfg.out_dim}, h, w) or (batch, {cfg.out_dim}, h, w); "
                             f"got {tuple(reference_latent.shape)}")
        self.model.grid(*ref.shape[2:])
        param = next(self.model.parameters())
        text_kv = self.model.text_kv(text_context.to(param.device) if text_context is not None else None)
        self.conditioning = Conditioning(ref.to(param.device, param.dtype), self.cache, text_kv)
        self.batch = ref.shape[0]
        self.cache.reset()
        self.calls.clear()
        self.emitted_frames = 0      # clean latent frames emitted so far
        self.blocks_in = 0
        self._recent: tuple[torch.Tensor, torch.Tensor] | None = None   # no-cache mode: the last clean block
        self._anchor_pending = not self.stream.anchor_audio_zero
        if self.stream.anchor_audio_zero:
            zeros = torch.zeros(self.batch, cfg.audio_pack, cfg.audio_dim, device=param.device, dtype=param.dtype)
            prefill_anchor(self.model, self.conditioning, zeros, self._observer())
        self._started = True

    def _observer(self) -> Observer | None:
        """An observer for the next call when calls are recorded or watched, else None (no keys kept)."""
        if not self.record_calls and self.on_call is None:
            return None

        def observe(kind: str, info: dict) -> None:
            if self.record_calls:
                self.calls.append(CallRecord.of(kind, info))
            if self.on_call is not None:
                self.on_call(kind, info)
        return observe

    def _check_audio(self, audio: torch.Tensor) -> torch.Tensor:
        if not self._started:
            raise RuntimeError("call start(reference_latent) before step()")
        cfg = self.model.cfg
        if audio.ndim == 2:
            audio = audio[None].expand(self.batch, *audio.shape)
        want = (self.batch, self.audio_rows_per_block, cfg.audio_dim)
        if tuple(audio.shape) != want:
            raise ValueError(f"audio features for one block must be {want} (batch, B*audio_pack, audio_dim) "
                             f"or {want[1:]}; got {tuple(audio.shape)}")
        return audio.to(self.ref.device, self.ref.dtype)

    def _noise(self, kind: str, block: int, shape: tuple) -> torch.Tensor:
        if self._noise_fn is not None:
            out = self._noise_fn(kind, block, shape)
            if tuple(out.shape) != tuple(shape):
                raise ValueError(f"noise_fn returned {tuple(out.shape)} for {kind} noise of block {block}; "
                                 f"expected {tuple(shape)}")
            return out.to(self.ref.device, self.ref.dtype)
        noise = torch.randn(shape, generator=self.generator, dtype=torch.float32,
                            device=self.generator.device if self.generator is not None else "cpu")
        return noise.to(self.ref.device, self.ref.dtype)

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """One window step at the stream's current place: x0 of x."""
        return window_step(self.model, self.stream, self.schedule, self.conditioning, x, t, audio,
                           1 + self.emitted_frames, self._observer())

    def _commit(self, block: PendingBlock, x0: torch.Tensor) -> torch.Tensor:
        """Emit a clean block: write its keys into the temporal anchor (the cache-update call)."""
        if self._anchor_pending:
            raise AssertionError("unreachable: anchor is prefilled before the first window")
        if self.stream.kv_cache:
            update_anchor(self.model, self.stream, self.conditioning, x0, block.audio, 1 + self.emitted_frames,
                          observe=self._observer())
        else:
            self._recent = (x0.detach(), block.audio)
        self.emitted_frames += x0.shape[1]
        return x0

    def _recompute_context(self) -> None:
        """No-cache mode: rebuild the anchors from the clean latents before every window (cost baseline)."""
        cfg = self.model.cfg
        self.cache.reset()
        prefill_anchor(self.model, self.conditioning, self.ref.new_zeros(self.batch, cfg.audio_pack, cfg.audio_dim),
                       self._observer())
        if self._recent is not None:
            x0, audio = self._recent
            update_anchor(self.model, self.stream, self.conditioning, x0, audio,
                          1 + self.emitted_frames - x0.shape[1], kind="context", observe=self._observer())

    def _deferred_anchor(self, audio: torch.Tensor) -> None:
        """Ablation without anchor-audio zero padding: the anchor hears the first block's first frame."""
        if self._anchor_pending:
            prefill_anchor(self.model, self.conditioning, audio[:, : self.model.cfg.audio_pack], self._observer())
            self._anchor_pending = False


class StreamingSampler(_Base):
    """AvatarForcing: `step(audio_of_one_block)` returns the newly clean block or None (warm-up)."""

    def start(self, reference_latent: torch.Tensor, text_context: torch.Tensor | None = None) -> None:
        super().start(reference_latent, text_context)
        self.pending: list[PendingBlock] = []

    @property
    def latency_blocks(self) -> int:
        """Blocks of look-ahead: a block is emitted L-1 steps after its audio arrived."""
        return self.stream.window_blocks - 1

    @torch.no_grad()
    def step(self, audio: torch.Tensor) -> torch.Tensor | None:
        return self.advance(audio)

    def advance(self, audio: torch.Tensor) -> torch.Tensor | None:
        """`step` under the caller's grad mode: a training rollout (`engine.train.dmd`) keeps a window's graph.

        The anchor calls still build no graph: this sampler's cache does not keep one.
        """
        audio = self._check_audio(audio)
        self._deferred_anchor(audio)
        cfg = self.model.cfg
        shape = (self.batch, self.block_frames, cfg.out_dim, *self.ref.shape[2:])
        self.pending.append(PendingBlock(self.blocks_in, self._noise("fresh", self.blocks_in, shape), audio))
        self.blocks_in += 1
        return self._window()

    @torch.no_grad()
    def flush(self) -> list[torch.Tensor]:
        """Drain the tail windows of a finite input: every pending block, in order."""
        out = []
        while self._started and self.pending:
            block = self._window()
            if block is not None:
                out.append(block)
        return out

    def _window(self) -> torch.Tensor | None:
        """One step: N model calls over the window; emit the oldest block if it reached the last level."""
        if not self.stream.kv_cache:
            self._recompute_context()
        final = len(self.levels) - 1
        emitted = None
        for _ in range(self.stream.passes):
            x = torch.cat([b.x for b in self.pending], dim=1)
            t = torch.cat([x.new_full((self.batch, self.block_frames), self.levels[b.level]) for b in self.pending], 1)
            audio = torch.cat([b.audio for b in self.pending], dim=1)
            x0 = self._denoise(x, t, audio)
            for j, block in enumerate(self.pending):
                block_x0 = x0[:, j * self.block_frames:(j + 1) * self.block_frames]
                if block.level == final:
                    emitted = (block, block_x0)
                    continue
                block.level += 1
                noise = self._noise("renoise", block.index, tuple(block_x0.shape))
                t_next = block_x0.new_full(block_x0.shape[:2], self.levels[block.level])
                block.x = self.schedule.add_noise(block_x0, noise, t_next)
            if emitted is not None:
                break
        if emitted is None:
            return None
        block, block_x0 = emitted
        self.pending.remove(block)
        return self._commit(block, block_x0)


class SelfForcingSampler(_Base):
    """Baseline: each block alone, through every level in turn (no look-ahead), same cache and API."""

    latency_blocks = 0

    @torch.no_grad()
    def step(self, audio: torch.Tensor) -> torch.Tensor:
        audio = self._check_audio(audio)
        self._deferred_anchor(audio)
        cfg = self.model.cfg
        index = self.blocks_in
        self.blocks_in += 1
        shape = (self.batch, self.block_frames, cfg.out_dim, *self.ref.shape[2:])
        x = self._noise("fresh", index, shape)
        if not self.stream.kv_cache:
            self._recompute_context()
        for level, timestep in enumerate(self.levels):
            t = x.new_full(x.shape[:2], timestep)
            x0 = self._denoise(x, t, audio)
            if level + 1 < len(self.levels):
                t_next = x.new_full(x.shape[:2], self.levels[level + 1])
                x = self.schedule.add_noise(x0, self._noise("renoise", index, shape), t_next)
        return self._commit(PendingBlock(index, x0, audio), x0)

    def flush(self) -> list[torch.Tensor]:
        return []
