"""A local paper broker that speaks Alpaca's wire protocols.

The unmodified alpaca-py SDK talks to it over real sockets (`url_override`),
which makes it both a product feature (`alpaca-cli sandbox serve`, for people
testing their scripts) and the backbone of this project's end-to-end tests.

- `engine`: the pure, synchronous matching engine (`PaperBroker`).
- `calendar`: NYSE sessions, holidays and early closes (pure).
- `assets`: the built-in list of tradable US stocks and ETFs.
- `ratelimit`: Alpaca's per-key request budget.
- `wire`: Alpaca's JSON shapes for accounts, orders, positions, clock, calendar, bars.
- `faults`: the switchboard of injected failures.
- `server`: the aiohttp server (`Sandbox`, `SandboxThread`) with REST and admin routes.
- `streams`: the trading and market-data WebSockets.

Importing this package is free; the submodules pull in aiohttp on demand.
"""
