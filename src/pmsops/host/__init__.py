"""Host-side Docker diagnostics: the runbook's ``docker inspect`` / ``exec`` / ``logs`` procedures.

These run on the host server (the runbook's HOST-SERVER-TERMINAL) and talk to the
``docker`` CLI only, never to the Docker API socket directly, so they work with
whatever context, sudo rules and socket permissions the operator already has.

Modules, one concern each:

``docker``          run the CLI with a timeout; map its failures to one-line errors
``containers``      ``docker inspect`` of containers and images as plain objects
``redis_password``  find Redis's ``requirepass`` (command, environment, redis.conf)
``worker_cmd``      the wrong-CMD diagnosis (container vs image CMD/ENTRYPOINT)
``networks``        required Docker networks and DNS from inside the container
``code_hash``       stale code: file hashes and git commits
``logs``            the runbook's log signals, summarised
``envdiff``         backend vs worker environment (names and fingerprints only)
``check``           all of the above for the runbook's default containers

Nothing here prints: every function returns :class:`pmsops.results.Result` objects
or raises a :class:`pmsops.errors.PmsopsError` with one line and a runbook hint.
"""
