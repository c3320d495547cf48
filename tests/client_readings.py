"""What the installed clients themselves read in a URL, in the shape the modelled rules return (for the
differential tests that pin pmsops.urls' rules and pmsops.urlread's model to the libraries)."""

from __future__ import annotations

from kombu.utils.url import url_to_parts
from redis.connection import parse_url


def redis_py_reading(url: str) -> dict:
    """redis-py's ``parse_url`` without the connection class (the rules never name one)."""
    found = parse_url(url)
    found.pop("connection_class", None)
    return found


def kombu_reading(url: str) -> dict:
    """kombu's ``url_to_parts`` of the first URL of a failover list, and how many there are."""
    pieces = url.split(";")
    parts = url_to_parts(pieces[0])
    return {
        "host": parts.hostname,
        "port": parts.port,
        "username": parts.username,
        "password": parts.password,
        "db": parts.path,
        "failover_urls": len(pieces),
    }
