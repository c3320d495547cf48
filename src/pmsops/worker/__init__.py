"""Worker-side tooling for inside the ``pms-worker`` container: wait for dependencies,
start the worker, check it (replaces the runbook's ``start_worker.sh`` and its manual checks)."""
