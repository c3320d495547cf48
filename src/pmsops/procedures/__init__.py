"""Runbook procedures that span areas: the Quick Smoke (API, health, Celery), worker-check (the worker
container's configuration, Redis, Celery, code). Above the runbook-area packages (checks, sync, api, worker,
host), which stay independent of each other; below the views (observe) and the CLI."""
