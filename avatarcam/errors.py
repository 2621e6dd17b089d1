"""User-facing errors: every message says what was wrong and how to fix it.

The CLI and the UI print these without a traceback; anything else is a bug.
"""


class AvatarCamError(Exception):
    """Base class of every error meant for the user."""


class ConfigError(AvatarCamError, ValueError):
    """A setting, flag or file the user gave is invalid."""


class DeviceError(AvatarCamError):
    """An audio device, camera backend or OBS connection is missing or broken."""


class ModelError(AvatarCamError):
    """A model card or checkpoint is missing, corrupt or for another architecture."""


class ObsError(DeviceError):
    """OBS is not installed, not reachable, or refused a request (the OBS page fixes it)."""


class StreamSettingsError(ModelError):
    """The anchor / stream settings do not fit the model (the anchors page fixes them)."""
