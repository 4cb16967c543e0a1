"""Allow ``python -m tack_action``."""

from .cli import main

main()
