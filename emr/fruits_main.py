"""spark-submit entry point on EMR: ``spark-submit .../fruits_main.py run --input s3://... --output s3://...``.

The library itself is installed on every node by ``bootstrap.sh``; this file only hands over to its CLI.
"""

from fruits_lib.cli import main

if __name__ == "__main__":
    main()
