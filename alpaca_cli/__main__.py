"""`python -m alpaca_cli` runs the same entry point as the console script."""

from alpaca_cli.cli import main

main()
