"""`python -m gridchat` is the `chat` command."""

import sys

from .chat.cli import main

sys.exit(main())
