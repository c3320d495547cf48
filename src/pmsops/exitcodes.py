"""Exit codes, named once so the CLI, the tests and the README agree."""

OK = 0
"""Everything checked is fine (warnings alone, unless ``--strict``)."""
FAILED = 1
"""A check or an operation failed."""
USAGE = 2
"""Bad input: an invalid option, URL, file or a missing variable."""
TIMEOUT = 124
"""``wait-for-deps`` gave up waiting (the value GNU ``timeout`` uses)."""
INTERRUPTED = 130
"""Ctrl-C: the results found so far were printed (128 + SIGINT, as shells report it)."""
