"""This CLI run's clock and stdout flag, apart from :mod:`pmsops.render` so that ``main()``
can set them without importing the renderer (and its redactor) on every start-up."""

from __future__ import annotations

STARTED: float | None = None
"""time.monotonic() when the CLI's main() began (set there): JSON's top-level duration_ms counts from here."""
JUNIT_WRITTEN = False
"""Set once the command wrote its --junit file: main() then writes none for an error."""
STDOUT_USED = False
"""Set once a report object (or a revealed value) went to stdout: main() then adds no error report."""
