"""`python -m scenarios.city_block`: run the shipped city block scenario."""

import sys
from pathlib import Path

from scenarios.cli import run_shipped

if __name__ == "__main__":
    sys.exit(run_shipped(Path(__file__).with_suffix(".yaml")))
