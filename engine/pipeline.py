"""AvatarStream with the model step on a second core: features and decoding overlap the next step.

Why: on one thread a block costs features + step + decode in a row; at 512x512 decoding is a third
of the step. The step only needs the block's features, and decoding only needs the step's
latents, so the model steps on its own thread while the caller's thread computes the next
features and decodes the previous block. At most one step is in flight and its frames are handed
out as soon as they are decoded (at the latest with the next block), so the added latency is
under one block, and the frames come out in the same order with the same pixels as unpipelined.

Torch runs each thread's operators on that thread when its intra-op pool has one thread
(`engine.threads=1`, the default on a 2-core machine), so the two stages use two cores.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any

import numpy as np
import torch


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class PipelinedStream:
    """Drop-in for `AvatarStream` (same calls, same frames); `close()` ends its step thread."""

    def __init__(self, stream: Any):
        self.stream = stream
        self._todo: queue.Queue = queue.Queue(maxsize=1)
        self._done: queue.Queue = queue.Queue()
        self._inflight = 0
        self._ready: list[np.ndarray] = []
        self._thread = threading.Thread(target=self._run, name="avatarcam-step", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:          # fps, size, card, step_ms, decode_ms, ...
        return getattr(self.stream, name)

    # -- the step thread -------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            feats = self._todo.get()
            if feats is None:
                return
            try:
                self._done.put((self.stream.timed_step(feats), None))
            except BaseException as exc:   # handed to the caller's thread, raised there
                self._done.put((None, exc))

    def _collect(self, wait: bool) -> list[np.ndarray]:
        """Decode the in-flight step's block if it is done (or once it is, with wait)."""
        if not self._inflight:
            return []
        try:
            block, exc = self._done.get(timeout=None) if wait else self._done.get_nowait()
        except queue.Empty:
            return []
        self._inflight -= 1
        if exc is not None:
            raise exc
        return self.stream._decode(block) if block is not None else []

    def _submit(self, feats: torch.Tensor) -> list[np.ndarray]:
        """Start the step of one block; decode the previous block while it runs."""
        block, exc = (None, None)
        if self._inflight:
            block, exc = self._done.get()
            self._inflight -= 1
        if exc is not None:
            raise exc
        self._todo.put(feats)
        self._inflight += 1
        return self.stream._decode(block) if block is not None else []

    # -- the stream's calls ------------------------------------------------------------------------
    def start(self, image: np.ndarray, *args, **kwargs) -> np.ndarray:
        self._ready += self._collect(wait=True)         # the old avatar's last block, drawn with it
        return self.stream.start(image, *args, **kwargs)

    def push_audio(self, pcm: np.ndarray) -> list[np.ndarray]:
        frames, self._ready = self._ready, []
        feats = self.stream.audio.push(np.asarray(pcm, dtype=np.float32))   # overlaps the step in flight
        frames += self._consume(feats)
        return frames + self._collect(wait=False)

    def _consume(self, feats: torch.Tensor) -> list[np.ndarray]:
        frames: list[np.ndarray] = []
        for block_feats in self.stream.feature_blocks(feats):
            frames += self._submit(block_feats)
        return frames

    def flush(self) -> list[np.ndarray]:
        s = self.stream
        frames, self._ready = self._ready, []
        for block_feats in s.final_blocks():
            frames += self._submit(block_feats)
        frames += self._collect(wait=True)
        for block in s.sampler.flush():
            frames += s._decode(block)
        return frames

    def close(self) -> None:
        if self._thread.is_alive():
            self._todo.put(None)
            self._thread.join(timeout=5)
