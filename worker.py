"""Starts a carecast worker: `python worker.py` is the same as `carecast worker`."""

import sys

from carecast.cli import main

if __name__ == "__main__":
    sys.argv[1:] = ["worker"]
    main()
