"""Seeing the whole sync system: ``pmsops top`` (a live view) and ``pmsops report`` (an incident bundle).

- :mod:`.snapshot` collects one bounded snapshot (pipelined Redis reads, one
  database query, two short concurrent broadcasts); each panel records its own error.
- :mod:`.top` renders snapshots with Rich, once or live.
- :mod:`.report` builds the redacted, secret-scanned ``.tar.gz``; :mod:`.charts`
  draws its inline SVG; :mod:`.secrets` lists every registered secret in every form.
"""
