"""``python -m leadfactory.llm.cli``: the same as the ``leadfactory-llm`` command."""

import sys

from . import main

sys.exit(main())
