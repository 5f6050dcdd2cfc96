"""Request errors with TensorFlow Serving's status codes.

Each :class:`ServingError` carries a ``tensorflow.error.Code`` name; the REST front end
maps it to an HTTP status as ``tensorflow_model_server`` does
(``model_servers/http_server.cc``, ``ToHTTPStatusCode``) and the gRPC front end to the
gRPC status code of the same name.
"""
from __future__ import annotations

#: tensorflow.error.Code name → HTTP status (TF Serving's ToHTTPStatusCode).
HTTP_STATUS = {
    "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request the server answers with an error status.

    Args:
        code: a ``tensorflow.error.Code`` name, e.g. ``"INVALID_ARGUMENT"``, ``"NOT_FOUND"``.
        message: the text sent back as ``{"error": message}`` (REST) or the gRPC details.
    """

    def __init__(self, code: str, message: str):
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown status code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)
