"""pmsops: the channel-manager operations runbook as a library and a CLI.

The library is usable without the CLI: every command is a thin wrapper over a
function in a module named for its concern (``urls``, ``passwords``,
``checks.redis`` …) that returns :class:`pmsops.results.Result` objects.
"""

__version__ = "0.1.0"
