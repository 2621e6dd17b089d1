"""Codecs: what turns the world into the model's numbers and back.

Audio in: `logmel` (ours, no weights), `wav2vec` (the paper's), `vad` (a speech gate in front of
either). Pictures: `autoencoder` (the toon latent space), `refdecoder` (latents drawn with the
portrait's own pixels), `rigdecoder` (a cartoon avatar posed by controls read off the latent),
`wan_vae` (the paper's Wan2.1 VAE), `weights_pair` (how our small networks sit on disk). Text:
`text_encoder` (umT5 prompts, cached) and `wan_umt5` (reading the Wan download's umT5 file).
"""
