"""`python -m hwforge` runs the CLI."""

from hwforge.cli import main

main()
