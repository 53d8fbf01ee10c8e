"""``python -m audiotok.cli ...``: the ``audiotok`` command without its console script."""
import sys

from audiotok.cli import main

sys.exit(main())
