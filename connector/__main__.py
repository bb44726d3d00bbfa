"""``python -m connector`` is ``crmsync``."""

from connector.cli import main

main()
