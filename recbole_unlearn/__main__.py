"""``python -m recbole_unlearn --key=value ...``: the same command line as ``run_recbole_unlearn.py``."""
import sys

from recbole_unlearn.cli import main

if __name__ == "__main__":
    sys.exit(main())
