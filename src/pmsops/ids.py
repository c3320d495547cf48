"""Ids from outside (an argument, ``CID``, an API path, a task's arguments): one rule for what is a UUID (a leaf)."""

from __future__ import annotations

import uuid
from typing import Any


def parse_uuid(value: Any) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (each caller says so in its own words: exit 2, a 422, a failed step)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
