"""The two tiers' volumes for generated inputs: ``make test`` draws a few hundred, ``make test-full`` the full volume."""

from __future__ import annotations

import pytest


def volumes(quick: int, full: int):
    """Parametrize a property test by how many examples it draws: ``quick`` in make test, ``full`` (marked slow) in
    make test-full. The test takes ``examples`` and runs its ``@given`` body with that many."""
    return pytest.mark.parametrize(
        "examples", [pytest.param(quick, id=f"{quick}-examples"), pytest.param(full, id=f"{full}-examples", marks=pytest.mark.slow)]
    )
