"""The AvatarForcing streaming engine: pure PyTorch, usable without the app."""
