"""The reference stack: real redis-server, PostgreSQL, Celery worker, API and fake platform on loopback."""
