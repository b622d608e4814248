"""Domain errors. They know nothing of HTTP; ``HTTP_STATUS`` is the one table mapping them."""


class GridGisError(Exception):
    """Base of every error a user can cause; the message is shown to them as it is."""


class NotFound(GridGisError):
    """The thing asked for does not exist (or the caller may not know it exists)."""


class InvalidInput(GridGisError):
    """Input that cannot be accepted: malformed, out of range, or breaking a rule."""


class TooLarge(InvalidInput):
    """Input larger than a configured limit (an uploaded or imported file)."""


class Conflict(GridGisError):
    """The request collides with the current state (a duplicate code, a stale version)."""


class StaleVersion(Conflict):
    """An edit based on a version that is no longer current; ``current`` is the row now."""

    def __init__(self, message: str, current: object = None):
        super().__init__(message)
        self.current = current


class VersionRequired(GridGisError):
    """An edit that does not say which version it is based on (If-Match)."""


class Forbidden(GridGisError):
    """The caller is known but may not do this."""


class Unauthorized(GridGisError):
    """The caller is not known (no or bad credentials)."""


class TooManyAttempts(GridGisError):
    """Too many failed log-ins for a user in a short time; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(GridGisError):
    """The database does not answer, or lacks what gridgis needs (PostGIS)."""


class ClusterError(GridGisError):
    """The embedded local PostGIS cluster cannot be created, started or stopped."""


HTTP_STATUS: dict[type[GridGisError], int] = {
    NotFound: 404,
    StaleVersion: 412,
    TooLarge: 413,
    VersionRequired: 428,
    InvalidInput: 422,
    Conflict: 409,
    Forbidden: 403,
    Unauthorized: 401,
    TooManyAttempts: 429,
    DatabaseUnavailable: 503,
    ClusterError: 503,
}


def status_of(error: GridGisError) -> int:
    """Return the HTTP status for a domain error (the nearest listed base class wins)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
