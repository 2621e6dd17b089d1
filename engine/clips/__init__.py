"""Talking clips of the cartoon-avatar domain, generated from a seed: what training learns from and
what the evaluation measures on (held-out seeds and voices). The avatars themselves are drawn by
`engine.toon`.

speech (espeak-ng audio with phoneme times from the synthesiser), flite and festival (two more
synthesiser families, their ARPAbet segments translated by arpabet), voices (every family behind one
call, some voices held out of training), visemes (phonemes -> mouth targets), sounds (non-speech a
microphone also hears), mic (voice changes and the microphone's channel), scene (a clip's whole
soundtrack), clip (all of it per seed). Deterministic in the seed, so clips are regenerated instead
of stored. Not runtime code: the app never imports it.
"""
