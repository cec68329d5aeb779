"""Errors a user can act on. The CLI prints these as one line and exits non-zero."""
from __future__ import annotations


class UserError(Exception):
    """Base class: the message names the problem (file, field, value) and what is valid."""
