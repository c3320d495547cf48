from pmsops.cli.main import run

run()
