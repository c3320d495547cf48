"""Checks: one module per dependency, each returning :class:`pmsops.results.Result` objects.

A check never prints and never raises for an expected failure: it returns a
``fail`` result with the runbook's hint. Every network call has a timeout.
"""
