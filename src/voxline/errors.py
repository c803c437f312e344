"""Domain errors. The API layer maps each to Retell's error shape and an HTTP status."""


class VoxlineError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(VoxlineError):
    status_code = 404


class BadRequest(VoxlineError):
    status_code = 400


class Unauthorized(VoxlineError):
    status_code = 401


class Conflict(VoxlineError):
    """The request is valid but the resource is in the wrong state (e.g. a call that has ended)."""

    status_code = 400
