"""What the installed clients themselves read in a URL, in the shape the modelled rules return (for the
differential tests that pin pmsops.urls' rules and pmsops.urlread's model to the libraries)."""

from __future__ import annotations

from pmsops.urls import parse_with_kombu, parse_with_redis_py

kombu_reading = parse_with_kombu
"""kombu's own reading (``url_to_parts`` of the first URL of a failover list, and how many there are)."""


def redis_py_reading(url: str) -> dict:
    """redis-py's own ``parse_url`` without the connection class (the rules never name one)."""
    found = parse_with_redis_py(url)
    found.pop("connection_class", None)
    return found
