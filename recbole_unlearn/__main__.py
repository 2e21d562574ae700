"""``python -m recbole_unlearn --key=value ...``: the same command line as ``run_recbole_unlearn.py``."""
from recbole_unlearn.cli import command

if __name__ == "__main__":
    command()
