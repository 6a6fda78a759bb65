"""`python -m scenarios run|validate FILE`."""

import sys

from scenarios.cli import main

sys.exit(main())
