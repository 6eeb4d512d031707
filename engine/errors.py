"""Errors the engine raises; each message says what to change."""


class EngineError(Exception):
    """Base of every error the engine reports to a caller."""

    code = "engine_error"

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(EngineError):
    """The request itself is wrong: bad text, parameter, voice or audio."""

    code = "invalid_request"


class TextTooLong(InvalidRequest):
    """The text is longer than the studio's input limit."""

    code = "input_too_long"

    def __init__(self, message: str):
        super().__init__(message, "input")


class InvalidAudio(InvalidRequest):
    """A reference clip that cannot be used."""

    code = "invalid_audio"


class NotFound(EngineError):
    """An unknown model, voice or preset."""

    code = "not_found"


class Busy(EngineError):
    """The queue is full; try again after `retry_after` seconds."""

    code = "busy"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(EngineError):
    """The caller cancelled the request."""

    code = "cancelled"


class ModelUnavailable(EngineError):
    """The model could not be loaded (missing weights, no network, bad checkpoint)."""

    code = "model_unavailable"


class SynthesisFailed(EngineError):
    """The model ran but produced nothing usable, or ran out of memory."""

    code = "synthesis_failed"
