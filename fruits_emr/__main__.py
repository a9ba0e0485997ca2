"""``python -m fruits_emr``."""

from fruits_emr.cli import main

main()
