"""``python -m cspsr_arch train|test -opt ...``: same as the ``basicsr`` console script."""
import sys

from cspsr_arch.cli import main

sys.exit(main())
