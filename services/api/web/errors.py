"""What a page answers instead of itself; routes.py turns each into a page (or JSON for the
pages' script)."""

from __future__ import annotations


class LoginRequired(Exception):
    """No session, or one whose token is no longer valid: back to the login page."""


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token: 403, the session kept."""


class PageError(Exception):
    """An error page with ``status`` and a ``message`` in Vietnamese."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
