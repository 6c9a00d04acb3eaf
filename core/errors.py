"""Errors the engine raises with a message a user can act on."""
from __future__ import annotations


class PovertyMapperError(Exception):
    """A problem with the user's input: the message says what to fix."""


class ModelFileError(PovertyMapperError):
    """A model file that cannot be read, is damaged or is of an unknown format."""


class Canceled(Exception):
    """The user canceled the run; nothing was written under the output name."""
