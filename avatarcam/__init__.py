"""AvatarCam: a live talking-avatar camera driven by a streaming one-step diffusion engine."""

__version__ = "0.1.0"
