"""The Typer CLI: parse options, call one library function, render, exit.

Command modules import only Typer at import time; each command imports the
library (and celery, asyncpg, httpx) inside its body, so ``pmsops --help`` and the
offline commands start as fast as Typer itself.
"""
