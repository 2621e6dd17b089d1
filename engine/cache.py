"""Fixed-capacity KV cache with the two anchors, and the positions it hands to the model.

Per layer it holds the style anchor (the reference frame's keys, never rotated) and a ring of the
most recent clean frames' keys (the temporal anchor, also stored un-rotated). Positions are handed
out relative to the window at every call, so nothing in the cache depends on how long the stream
has run: memory and cost are constant, and frame 10,000 looks exactly like frame 10.

Position layout of a call whose first frame is absolute frame `fs` with `W` temporal frames:
  anchor at 0 (RoPE re-indexing: immediately before the temporal frames), temporal frames at
  1..W, the call's own frames from W+1 on. Without re-indexing the anchor keeps its absolute
  frame 0, i.e. relative position W+1-fs, drifting away as the stream runs (the ablation, and
  the authors' cache-update call).
"""
from __future__ import annotations

import torch

from .model import Memory


class StreamCache:
    # Inference drops the autograd graph of what it stores and rolls the ring in place; training
    # (ODE backfill) sets this to keep the graph, which needs the ring rebuilt out of place because
    # earlier calls saved the old ring for their backward pass.
    keep_graph = False

    def __init__(self, num_layers: int, temporal_frames: int):
        self.num_layers = num_layers
        self.capacity = temporal_frames
        self.anchor_k: list[torch.Tensor] | None = None
        self.anchor_v: list[torch.Tensor] | None = None
        self.ring_k: list[torch.Tensor] | None = None
        self.ring_v: list[torch.Tensor] | None = None
        self.filled = 0          # temporal frames held (<= capacity)
        self.tokens_per_frame = 0

    def reset(self) -> None:
        self.anchor_k = self.anchor_v = self.ring_k = self.ring_v = None
        self.filled = 0

    def set_anchor(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Store the reference frame's un-rotated keys and values (one frame per layer)."""
        self.anchor_k = [self._keep(k) for k in keys]
        self.anchor_v = [self._keep(v) for v in values]
        self.tokens_per_frame = keys[0].shape[1]

    def push(self, keys: list[torch.Tensor], values: list[torch.Tensor], frames: int) -> None:
        """Add the newest clean frames (un-rotated keys); the oldest fall out, capacity stays fixed."""
        if self.capacity == 0:
            return
        s = keys[0].shape[1] // frames
        keep = min(frames, self.capacity)
        if self.ring_k is None:
            shape = lambda t: (t.shape[0], self.capacity * s, *t.shape[2:])  # noqa: E731
            self.ring_k = [k.new_zeros(shape(k)) for k in keys]
            self.ring_v = [v.new_zeros(shape(v)) for v in values]
        n_new = keep * s
        if self.keep_graph:
            n = self.capacity * s
            self.ring_k = [torch.cat([r, k[:, -n_new:]], 1)[:, -n:] for r, k in zip(self.ring_k, keys)]
            self.ring_v = [torch.cat([r, v[:, -n_new:]], 1)[:, -n:] for r, v in zip(self.ring_v, values)]
        else:
            for i in range(self.num_layers):
                for ring, new in ((self.ring_k[i], keys[i]), (self.ring_v[i], values[i])):
                    if n_new < ring.shape[1]:
                        ring[:, :-n_new] = ring[:, n_new:].clone()
                    ring[:, -n_new:] = new[:, -n_new:].detach()
        self.filled = min(self.capacity, self.filled + keep)

    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.keep_graph else t.detach()

    def memory(self, first_frame: int, style_anchor: bool, anchor_reindexed: bool) -> Memory | None:
        """Keys/values (and their relative positions) that a call starting at absolute `first_frame` sees."""
        ks: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]
        vs: list[list[torch.Tensor]] = [[] for _ in range(self.num_layers)]
        pos: list[float] = []
        w = self.filled
        if style_anchor and self.anchor_k is not None:
            pos.append(0.0 if anchor_reindexed else float(w + 1 - first_frame))
            for i in range(self.num_layers):
                ks[i].append(self.anchor_k[i])
                vs[i].append(self.anchor_v[i])
        if w:
            s = self.ring_k[0].shape[1] // self.capacity
            pos.extend(float(p) for p in range(1, w + 1))
            for i in range(self.num_layers):
                ks[i].append(self.ring_k[i][:, -w * s:])
                vs[i].append(self.ring_v[i][:, -w * s:])
        if not pos:
            return None
        cat = lambda parts: parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # noqa: E731
        return Memory([cat(k) for k in ks], [cat(v) for v in vs], torch.tensor(pos))

    def frame_positions(self, frames: int) -> torch.Tensor:
        """Positions of a call's own frames: right after the temporal anchor."""
        return torch.arange(self.filled + 1, self.filled + 1 + frames, dtype=torch.float64)

    def nbytes(self) -> int:
        tensors = (self.anchor_k or []) + (self.anchor_v or []) + (self.ring_k or []) + (self.ring_v or [])
        return sum(t.numel() * t.element_size() for t in tensors)
