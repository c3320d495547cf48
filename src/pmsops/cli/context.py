"""``pmsops context add|use|list|remove``: named env files for several deployments."""

from __future__ import annotations


from typing import Optional

import typer

from pmsops.cli.common import JSON_OPTION, complete_context as _complete, finish, output, state

context_app = typer.Typer(
    help="Named contexts (one env file per deployment), as kubectl/docker/gh have: add, use, list, remove.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(context_app, name="context", rich_help_panel="Setup")


def _show(store, json_mode: bool, title: str | None = None) -> None:
    out = output(json_mode)
    if json_mode:
        out.json(
            {
                "schema": "pmsops.contexts/v1",
                "current": store.current,
                "contexts": [{"name": n, "env_file": c["env_file"], "current": n == store.current} for n, c in sorted(store.contexts.items())],
            }
        )
        return
    if title:
        out.line(title)
    if not store.contexts:
        out.line("no contexts: pmsops context add NAME --env-file PATH")
        return
    width = max(len(n) for n in store.contexts)
    out.line(f"  {'NAME':<{width}}  ENV FILE", style="bold")
    for name, entry in sorted(store.contexts.items()):
        mark = "*" if name == store.current else " "
        out.line(f"{mark} {name:<{width}}  {entry['env_file']}")


@context_app.command("add")
def context_add(
    name: str = typer.Argument(..., help="A short name: prod, staging."),
    env_file: Optional[str] = typer.Option(
        None, "--env-file", metavar="PATH", help="The deployment's env file (its path is stored, never its contents)."
    ),
    use: bool = typer.Option(False, "--use", help="Also make it the active context."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Remember an env file under a name (the first context added becomes the active one)."""
    from pmsops import contexts
    from pmsops.cli.common import state
    from pmsops.errors import UsageError

    run = state()
    path = env_file or (run.env_file if run.env_source == "--env-file" else None)  # --env-file is global: it may have been taken there
    if not path:
        raise UsageError("context add needs --env-file PATH", hint="pmsops context add prod --env-file /root/pms_env.sh")
    store = contexts.add(name, path, state().environ(), use=use)
    _show(store, json_mode, f"added context {name}")
    finish(0)


@context_app.command("use")
def context_use(name: str = typer.Argument(..., help="The context to make active.", autocompletion=_complete), json_mode: bool = JSON_OPTION) -> None:
    """Make a context the active one: every later command reads its env file (unless --env-file or --context)."""
    from pmsops import contexts

    _show(contexts.use(name, state().environ()), json_mode, f"active context: {name}")
    finish(0)


@context_app.command("list")
def context_list(json_mode: bool = JSON_OPTION) -> None:
    """The contexts, the active one marked with *."""
    from pmsops import contexts

    _show(contexts.load(state().environ()), json_mode)
    finish(0)


@context_app.command("remove")
def context_remove(
    name: str = typer.Argument(..., help="The context to forget (its env file is left alone).", autocompletion=_complete),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Forget a context (the env file itself is not touched)."""
    from pmsops import contexts

    _show(contexts.remove(name, state().environ()), json_mode, f"removed context {name}")
    finish(0)
