"""`python -m carryon` runs the command line."""

from carryon.cli import main

main()
