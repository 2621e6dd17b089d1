"""Tools around the engine, never imported by the streaming path: benchmarks (`bench`, `gpu_bench`,
`perf`), the evaluation (`eval` with its `eval_picture`, `eval_voices` and `eval_creator` sections,
the shared `lipsync` measures and `results` JSON, the `probe` that reads a generated mouth), the
paper model's importer and card verifier (`paper_import`), and the bundled demo voice and portrait
(`demo_assets`).
"""
