"""Typed errors of the services; the API maps them to HTTP in one handler, the CLI to messages."""


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class InvalidInput(ServiceError):
    status_code = 422


class Forbidden(ServiceError):
    status_code = 403


class TooMany(ServiceError):
    """Rate limited: the answer carries Retry-After."""

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
