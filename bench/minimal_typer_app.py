"""The baseline for start-up time: a minimal 10-command Typer app, nothing else imported."""

import typer

app = typer.Typer()


def _make(n: int):
    def command(name: str = typer.Option("x", help="A name.")) -> None:
        """A command that does nothing."""
        typer.echo(name)

    command.__name__ = f"command{n}"
    return command


for i in range(10):
    app.command(f"command-{i}")(_make(i))

if __name__ == "__main__":
    app()
