"""Training clips of the cartoon-avatar domain (the avatars themselves are drawn by `engine.toon`).

speech (espeak-ng audio with phoneme times from the synthesiser), visemes (phonemes -> mouth
targets), clips (all of it per seed), demo_assets (the bundled demo voice and portrait).
Deterministic in the seed so training data can be regenerated instead of stored.
"""
