"""`python -m bench.compare`: see the package's docstring and bench/README.md."""

import sys

from .cli import main

sys.exit(main())
