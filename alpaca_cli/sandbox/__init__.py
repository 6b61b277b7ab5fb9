"""A local paper broker that speaks Alpaca's wire protocols.

The unmodified alpaca-py SDK talks to it over real sockets (`url_override`),
which makes it both a product feature (`alpaca-cli sandbox serve`, for people
testing their scripts) and the backbone of this project's end-to-end tests.

The engine (pure, synchronous, its own objects; no JSON):
- `model`: orders, positions, refusals and the views the engine answers with.
- `orderrequest`: an order request body checked and parsed, apart from matching.
- `engine`: the order lifecycle of one account (`PaperBroker`), composed of
  `market` (the seeded price walks and their tape), `history` (historical bars),
  `account` (cash, positions, buying power), `books` (working orders by price),
  `matching` (how a working order ends), `orderstore` (every order, by id and
  time), `legs` (bracket, OCO and OTO rules) and `bulk` (load-test seeding).
- `calendar`, `assets`: NYSE sessions and the built-in asset list.

The server (aiohttp, on demand):
- `server`: `Sandbox` (state, request guard, tick loop) and `SandboxThread`.
- `restapi`: the engine behind Alpaca's JSON (`BrokerApi`); `wire` holds the shapes.
- `tradingrest`, `datarest` (stocks and crypto), `accountrest`, `adminrest`: the REST routes.
- `streams`, `wsconn`, `datafeed`, `tradestream`, `marketdata`: the WebSockets (the hub,
  one connection, the market-data feed) and their protocols.
- `faults`, `ratelimit`, `params`, `respond`: fault switches, the request budget,
  query parsing, JSON answers.

Importing this package is free; the submodules pull in aiohttp on demand.
"""
