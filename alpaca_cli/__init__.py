"""alpaca-cli: composable commands for trading through Alpaca.

Kept import-free on purpose: `--help` and shell completion load this package,
and must not pay for alpaca-py (pandas) or pydantic.
"""

__version__ = "0.1.0"
