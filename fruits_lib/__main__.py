"""``python -m fruits_lib``: the command line (see ``fruits_lib.cli``)."""

from fruits_lib.cli import main

if __name__ == "__main__":
    main(prog="python -m fruits_lib")
