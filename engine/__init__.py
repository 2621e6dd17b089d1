"""The AvatarForcing streaming engine: pure PyTorch, usable without the app.

The core sits here (config, model, rope, cache, schedule, sampler, stream) beside the model card
(card, checkpoints, checksums) and what makes it run fast (accel, backends, pipeline, flops);
`codecs/` turns audio, pictures and text into the model's numbers and back, `toon/` draws the
cartoon avatars, `clips/` generates talking clips, `tools/` benchmarks, evaluates and imports,
`train/` distils the shipped model. A live stream never loads `tools/`, `clips/` or `train/`
(docs/architecture.md; held by tests/test_layout.py).
"""
