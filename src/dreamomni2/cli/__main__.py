"""``python -m dreamomni2.cli`` (used by ``accelerate launch`` and ``torchrun``)."""

import sys

from dreamomni2.cli import main

sys.exit(main())
