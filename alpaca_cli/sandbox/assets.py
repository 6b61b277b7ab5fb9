"""The sandbox's asset list: common US stocks and ETFs, as `/v2/assets` serves them.

A compact table, one asset a line: symbol, listing exchange, a reference
price (where the seeded walk starts, give or take a few percent) and flags
for what is not the default, then the name. Flags: `n` not fractionable,
`h` hard to borrow, `s` not shortable, `m` not marginable, `i` inactive
(delisted or merged away: listed, but not tradable). Orders on symbols not
listed here, or not tradable, are refused as Alpaca refuses them. Crypto
pairs (class `crypto`, exchange `CRYPTO`) have their own short table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

# Asset ids are uuid5 of the symbol in this namespace: stable across runs, like Alpaca's.
_NAMESPACE = uuid.UUID("6f1c1e4a-2b3d-4c5e-8f70-a1b2c3d4e5f6")

_TABLE = """\
AAPL NASDAQ 230 - Apple Inc. Common Stock
MSFT NASDAQ 420 - Microsoft Corporation Common Stock
AMZN NASDAQ 185 - Amazon.com, Inc. Common Stock
GOOGL NASDAQ 165 - Alphabet Inc. Class A Common Stock
GOOG NASDAQ 167 - Alphabet Inc. Class C Capital Stock
META NASDAQ 520 - Meta Platforms, Inc. Class A Common Stock
NVDA NASDAQ 120 - NVIDIA Corporation Common Stock
TSLA NASDAQ 240 - Tesla, Inc. Common Stock
AVGO NASDAQ 160 - Broadcom Inc. Common Stock
AMD NASDAQ 150 - Advanced Micro Devices, Inc. Common Stock
INTC NASDAQ 22 - Intel Corporation Common Stock
CSCO NASDAQ 52 - Cisco Systems, Inc. Common Stock
ADBE NASDAQ 500 - Adobe Inc. Common Stock
NFLX NASDAQ 680 - Netflix, Inc. Common Stock
PEP NASDAQ 170 - PepsiCo, Inc. Common Stock
COST NASDAQ 880 - Costco Wholesale Corporation Common Stock
CMCSA NASDAQ 40 - Comcast Corporation Class A Common Stock
TXN NASDAQ 200 - Texas Instruments Incorporated Common Stock
QCOM NASDAQ 165 - QUALCOMM Incorporated Common Stock
AMGN NASDAQ 320 - Amgen Inc. Common Stock
INTU NASDAQ 620 - Intuit Inc. Common Stock
ISRG NASDAQ 480 - Intuitive Surgical, Inc. Common Stock
HON NASDAQ 210 - Honeywell International Inc. Common Stock
AMAT NASDAQ 190 - Applied Materials, Inc. Common Stock
BKNG NASDAQ 3900 n Booking Holdings Inc. Common Stock
SBUX NASDAQ 95 - Starbucks Corporation Common Stock
GILD NASDAQ 80 - Gilead Sciences, Inc. Common Stock
MDLZ NASDAQ 70 - Mondelez International, Inc. Class A Common Stock
ADP NASDAQ 280 - Automatic Data Processing, Inc. Common Stock
VRTX NASDAQ 480 - Vertex Pharmaceuticals Incorporated Common Stock
REGN NASDAQ 1000 - Regeneron Pharmaceuticals, Inc. Common Stock
LRCX NASDAQ 75 - Lam Research Corporation Common Stock
MU NASDAQ 100 - Micron Technology, Inc. Common Stock
PANW NASDAQ 180 - Palo Alto Networks, Inc. Common Stock
KLAC NASDAQ 750 - KLA Corporation Common Stock
SNPS NASDAQ 520 - Synopsys, Inc. Common Stock
CDNS NASDAQ 280 - Cadence Design Systems, Inc. Common Stock
MELI NASDAQ 2000 n MercadoLibre, Inc. Common Stock
PYPL NASDAQ 70 - PayPal Holdings, Inc. Common Stock
ASML NASDAQ 850 - ASML Holding N.V. New York Registry Shares
MAR NASDAQ 240 - Marriott International, Inc. Class A Common Stock
ORLY NASDAQ 1100 - O'Reilly Automotive, Inc. Common Stock
CTAS NASDAQ 200 - Cintas Corporation Common Stock
ABNB NASDAQ 130 - Airbnb, Inc. Class A Common Stock
CRWD NASDAQ 300 - CrowdStrike Holdings, Inc. Class A Common Stock
MRVL NASDAQ 75 - Marvell Technology, Inc. Common Stock
FTNT NASDAQ 75 - Fortinet, Inc. Common Stock
ADI NASDAQ 220 - Analog Devices, Inc. Common Stock
MNST NASDAQ 52 - Monster Beverage Corporation Common Stock
KDP NASDAQ 35 - Keurig Dr Pepper Inc. Common Stock
CHTR NASDAQ 340 - Charter Communications, Inc. Class A Common Stock
PCAR NASDAQ 105 - PACCAR Inc. Common Stock
ROST NASDAQ 145 - Ross Stores, Inc. Common Stock
AEP NASDAQ 100 - American Electric Power Company, Inc. Common Stock
EXC NASDAQ 39 - Exelon Corporation Common Stock
XEL NASDAQ 65 - Xcel Energy Inc. Common Stock
PAYX NASDAQ 140 - Paychex, Inc. Common Stock
ODFL NASDAQ 190 - Old Dominion Freight Line, Inc. Common Stock
IDXX NASDAQ 480 - IDEXX Laboratories, Inc. Common Stock
CPRT NASDAQ 55 - Copart, Inc. Common Stock
FAST NASDAQ 70 - Fastenal Company Common Stock
CSX NASDAQ 34 - CSX Corporation Common Stock
DXCM NASDAQ 75 - DexCom, Inc. Common Stock
BIIB NASDAQ 190 - Biogen Inc. Common Stock
EA NASDAQ 150 - Electronic Arts Inc. Common Stock
CTSH NASDAQ 78 - Cognizant Technology Solutions Corporation Class A Common Stock
WBD NASDAQ 9 - Warner Bros. Discovery, Inc. Series A Common Stock
ILMN NASDAQ 130 - Illumina, Inc. Common Stock
MRNA NASDAQ 60 - Moderna, Inc. Common Stock
ZS NASDAQ 190 - Zscaler, Inc. Common Stock
DDOG NASDAQ 120 - Datadog, Inc. Class A Common Stock
TEAM NASDAQ 180 - Atlassian Corporation Class A Common Stock
WDAY NASDAQ 250 - Workday, Inc. Class A Common Stock
TTD NASDAQ 100 - The Trade Desk, Inc. Class A Common Stock
LULU NASDAQ 300 - lululemon athletica inc. Common Stock
ON NASDAQ 70 - ON Semiconductor Corporation Common Stock
GFS NASDAQ 40 - GLOBALFOUNDRIES Inc. Ordinary Shares
ANSS NASDAQ 330 - ANSYS, Inc. Common Stock
CDW NASDAQ 220 - CDW Corporation Common Stock
VRSK NASDAQ 270 - Verisk Analytics, Inc. Common Stock
DLTR NASDAQ 75 - Dollar Tree, Inc. Common Stock
SIRI NASDAQ 25 - Sirius XM Holdings Inc. Common Stock
PDD NASDAQ 130 - PDD Holdings Inc. American Depositary Shares
JD NASDAQ 35 - JD.com, Inc. American Depositary Shares
BIDU NASDAQ 90 - Baidu, Inc. ADS
NTES NASDAQ 90 - NetEase, Inc. American Depositary Shares
PLTR NASDAQ 40 - Palantir Technologies Inc. Class A Common Stock
COIN NASDAQ 200 h Coinbase Global, Inc. Class A Common Stock
HOOD NASDAQ 25 - Robinhood Markets, Inc. Class A Common Stock
RIVN NASDAQ 13 h Rivian Automotive, Inc. Class A Common Stock
LCID NASDAQ 3.5 h Lucid Group, Inc. Common Stock
SOFI NASDAQ 9 - SoFi Technologies, Inc. Common Stock
ROKU NASDAQ 70 - Roku, Inc. Class A Common Stock
ZM NASDAQ 70 - Zoom Video Communications, Inc. Class A Common Stock
DOCU NASDAQ 70 - DocuSign, Inc. Common Stock
OKTA NASDAQ 75 - Okta, Inc. Class A Common Stock
SPLK NASDAQ 155 i Splunk Inc. Common Stock
ATVI NASDAQ 94 i Activision Blizzard, Inc. Common Stock
TWTR NYSE 54 i Twitter, Inc. Common Stock
SMCI NASDAQ 40 h Super Micro Computer, Inc. Common Stock
ARM NASDAQ 140 - Arm Holdings plc American Depositary Shares
APP NASDAQ 300 - AppLovin Corporation Class A Common Stock
MSTR NASDAQ 350 h MicroStrategy Incorporated Class A Common Stock
AAL NASDAQ 14 - American Airlines Group Inc. Common Stock
UAL NASDAQ 80 - United Airlines Holdings, Inc. Common Stock
EBAY NASDAQ 60 - eBay Inc. Common Stock
EXPE NASDAQ 170 - Expedia Group, Inc. Common Stock
TMUS NASDAQ 220 - T-Mobile US, Inc. Common Stock
WBA NASDAQ 10 - Walgreens Boots Alliance, Inc. Common Stock
ALGN NASDAQ 230 - Align Technology, Inc. Common Stock
ENPH NASDAQ 80 - Enphase Energy, Inc. Common Stock
FSLR NASDAQ 200 - First Solar, Inc. Common Stock
NDAQ NASDAQ 75 - Nasdaq, Inc. Common Stock
HBAN NASDAQ 16 - Huntington Bancshares Incorporated Common Stock
FITB NASDAQ 42 - Fifth Third Bancorp Common Stock
NTRS NASDAQ 100 - Northern Trust Corporation Common Stock
SWKS NASDAQ 90 - Skyworks Solutions, Inc. Common Stock
AKAM NASDAQ 100 - Akamai Technologies, Inc. Common Stock
NXPI NASDAQ 230 - NXP Semiconductors N.V. Common Stock
MCHP NASDAQ 75 - Microchip Technology Incorporated Common Stock
QQQ NASDAQ 500 - Invesco QQQ Trust, Series 1
TQQQ NASDAQ 75 - ProShares UltraPro QQQ
SQQQ NASDAQ 8 h ProShares UltraPro Short QQQ
TLT NASDAQ 95 - iShares 20+ Year Treasury Bond ETF
IEF NASDAQ 95 - iShares 7-10 Year Treasury Bond ETF
SHY NASDAQ 82 - iShares 1-3 Year Treasury Bond ETF
IBB NASDAQ 140 - iShares Biotechnology ETF
SOXX NASDAQ 220 - iShares Semiconductor ETF
QQQM NASDAQ 200 - Invesco NASDAQ 100 ETF
BND NASDAQ 73 - Vanguard Total Bond Market ETF
VXUS NASDAQ 62 - Vanguard Total International Stock ETF
JPM NYSE 220 - JPMorgan Chase & Co. Common Stock
BAC NYSE 40 - Bank of America Corporation Common Stock
WFC NYSE 60 - Wells Fargo & Company Common Stock
C NYSE 65 - Citigroup Inc. Common Stock
GS NYSE 500 - The Goldman Sachs Group, Inc. Common Stock
MS NYSE 100 - Morgan Stanley Common Stock
BLK NYSE 900 - BlackRock, Inc. Common Stock
SCHW NYSE 70 - The Charles Schwab Corporation Common Stock
AXP NYSE 260 - American Express Company Common Stock
V NYSE 280 - Visa Inc. Class A Common Stock
MA NYSE 490 - Mastercard Incorporated Class A Common Stock
BRK.B NYSE 450 - Berkshire Hathaway Inc. Class B Common Stock
BRK.A NYSE 680000 ns Berkshire Hathaway Inc. Class A Common Stock
UNH NYSE 580 - UnitedHealth Group Incorporated Common Stock
JNJ NYSE 160 - Johnson & Johnson Common Stock
LLY NYSE 900 - Eli Lilly and Company Common Stock
PFE NYSE 29 - Pfizer, Inc. Common Stock
MRK NYSE 110 - Merck & Co., Inc. Common Stock
ABBV NYSE 190 - AbbVie Inc. Common Stock
TMO NYSE 600 - Thermo Fisher Scientific Inc. Common Stock
ABT NYSE 115 - Abbott Laboratories Common Stock
DHR NYSE 270 - Danaher Corporation Common Stock
BMY NYSE 50 - Bristol-Myers Squibb Company Common Stock
CVS NYSE 58 - CVS Health Corporation Common Stock
CI NYSE 340 - The Cigna Group Common Stock
ELV NYSE 450 - Elevance Health, Inc. Common Stock
HCA NYSE 380 - HCA Healthcare, Inc. Common Stock
MDT NYSE 88 - Medtronic plc Ordinary Shares
SYK NYSE 360 - Stryker Corporation Common Stock
BSX NYSE 80 - Boston Scientific Corporation Common Stock
ZTS NYSE 180 - Zoetis Inc. Class A Common Stock
XOM NYSE 115 - Exxon Mobil Corporation Common Stock
CVX NYSE 150 - Chevron Corporation Common Stock
COP NYSE 110 - ConocoPhillips Common Stock
SLB NYSE 45 - Schlumberger N.V. Common Stock
EOG NYSE 125 - EOG Resources, Inc. Common Stock
OXY NYSE 55 - Occidental Petroleum Corporation Common Stock
PSX NYSE 130 - Phillips 66 Common Stock
MPC NYSE 160 - Marathon Petroleum Corporation Common Stock
VLO NYSE 140 - Valero Energy Corporation Common Stock
KMI NYSE 24 - Kinder Morgan, Inc. Common Stock
WMB NYSE 50 - The Williams Companies, Inc. Common Stock
HAL NYSE 30 - Halliburton Company Common Stock
DVN NYSE 40 - Devon Energy Corporation Common Stock
WMT NYSE 80 - Walmart Inc. Common Stock
HD NYSE 400 - The Home Depot, Inc. Common Stock
LOW NYSE 260 - Lowe's Companies, Inc. Common Stock
TGT NYSE 150 - Target Corporation Common Stock
NKE NYSE 80 - Nike, Inc. Common Stock
MCD NYSE 290 - McDonald's Corporation Common Stock
KO NYSE 70 - The Coca-Cola Company Common Stock
PG NYSE 170 - The Procter & Gamble Company Common Stock
PM NYSE 120 - Philip Morris International Inc. Common Stock
MO NYSE 50 - Altria Group, Inc. Common Stock
CL NYSE 95 - Colgate-Palmolive Company Common Stock
KMB NYSE 140 - Kimberly-Clark Corporation Common Stock
GIS NYSE 68 - General Mills, Inc. Common Stock
HSY NYSE 180 - The Hershey Company Common Stock
STZ NYSE 240 - Constellation Brands, Inc. Class A Common Stock
EL NYSE 90 - The Estee Lauder Companies Inc. Class A Common Stock
DIS NYSE 95 - The Walt Disney Company Common Stock
T NYSE 22 - AT&T Inc. Common Stock
VZ NYSE 42 - Verizon Communications Inc. Common Stock
IBM NYSE 220 - International Business Machines Corporation Common Stock
ORCL NYSE 170 - Oracle Corporation Common Stock
CRM NYSE 290 - Salesforce, Inc. Common Stock
ACN NYSE 350 - Accenture plc Class A Ordinary Shares
NOW NYSE 900 - ServiceNow, Inc. Common Stock
UBER NYSE 75 - Uber Technologies, Inc. Common Stock
SHOP NYSE 80 - Shopify Inc. Class A Subordinate Voting Shares
SNOW NYSE 120 - Snowflake Inc. Common Stock
NET NYSE 85 - Cloudflare, Inc. Class A Common Stock
SQ NYSE 70 - Block, Inc. Class A Common Stock
SPOT NYSE 380 - Spotify Technology S.A. Ordinary Shares
TSM NYSE 190 - Taiwan Semiconductor Manufacturing Company Ltd. ADS
BABA NYSE 95 - Alibaba Group Holding Limited ADS
NIO NYSE 5 h NIO Inc. American Depositary Shares
BA NYSE 160 - The Boeing Company Common Stock
GE NYSE 180 - GE Aerospace Common Stock
CAT NYSE 370 - Caterpillar Inc. Common Stock
DE NYSE 400 - Deere & Company Common Stock
MMM NYSE 130 - 3M Company Common Stock
LMT NYSE 560 - Lockheed Martin Corporation Common Stock
RTX NYSE 120 - RTX Corporation Common Stock
NOC NYSE 500 - Northrop Grumman Corporation Common Stock
GD NYSE 290 - General Dynamics Corporation Common Stock
UPS NYSE 130 - United Parcel Service, Inc. Class B Common Stock
FDX NYSE 290 - FedEx Corporation Common Stock
UNP NYSE 240 - Union Pacific Corporation Common Stock
EMR NYSE 110 - Emerson Electric Co. Common Stock
ETN NYSE 320 - Eaton Corporation plc Ordinary Shares
ITW NYSE 250 - Illinois Tool Works Inc. Common Stock
F NYSE 11 - Ford Motor Company Common Stock
GM NYSE 50 - General Motors Company Common Stock
NEE NYSE 78 - NextEra Energy, Inc. Common Stock
DUK NYSE 115 - Duke Energy Corporation Common Stock
SO NYSE 90 - The Southern Company Common Stock
D NYSE 58 - Dominion Energy, Inc. Common Stock
LIN NYSE 470 - Linde plc Ordinary Shares
APD NYSE 310 - Air Products and Chemicals, Inc. Common Stock
SHW NYSE 370 - The Sherwin-Williams Company Common Stock
ECL NYSE 250 - Ecolab Inc. Common Stock
DOW NYSE 50 - Dow Inc. Common Stock
FCX NYSE 45 - Freeport-McMoRan Inc. Common Stock
NEM NYSE 50 - Newmont Corporation Common Stock
AMT NYSE 210 - American Tower Corporation Common Stock
PLD NYSE 115 - Prologis, Inc. Common Stock
CCI NYSE 105 - Crown Castle Inc. Common Stock
SPG NYSE 170 - Simon Property Group, Inc. Common Stock
O NYSE 60 - Realty Income Corporation Common Stock
PGR NYSE 250 - The Progressive Corporation Common Stock
CB NYSE 280 - Chubb Limited Common Stock
MMC NYSE 225 - Marsh & McLennan Companies, Inc. Common Stock
AIG NYSE 75 - American International Group, Inc. Common Stock
MET NYSE 80 - MetLife, Inc. Common Stock
PRU NYSE 120 - Prudential Financial, Inc. Common Stock
USB NYSE 48 - U.S. Bancorp Common Stock
PNC NYSE 190 - The PNC Financial Services Group, Inc. Common Stock
TFC NYSE 43 - Truist Financial Corporation Common Stock
COF NYSE 170 - Capital One Financial Corporation Common Stock
SPGI NYSE 510 - S&P Global Inc. Common Stock
MCO NYSE 470 - Moody's Corporation Common Stock
ICE NYSE 160 - Intercontinental Exchange, Inc. Common Stock
CME NASDAQ 230 - CME Group Inc. Class A Common Stock
KKR NYSE 140 - KKR & Co. Inc. Common Stock
BX NYSE 170 - Blackstone Inc. Common Stock
GME NYSE 25 h GameStop Corp. Class A Common Stock
AMC NYSE 4.5 h AMC Entertainment Holdings, Inc. Class A Common Stock
BBBY NASDAQ 0.08 i Bed Bath & Beyond Inc. Common Stock
CHWY NYSE 30 - Chewy, Inc. Class A Common Stock
DAL NYSE 55 - Delta Air Lines, Inc. Common Stock
LUV NYSE 30 - Southwest Airlines Co. Common Stock
CCL NYSE 22 - Carnival Corporation Common Stock
RCL NYSE 210 - Royal Caribbean Cruises Ltd. Common Stock
MGM NYSE 38 - MGM Resorts International Common Stock
HLT NYSE 240 - Hilton Worldwide Holdings Inc. Common Stock
YUM NYSE 135 - Yum! Brands, Inc. Common Stock
CMG NYSE 58 - Chipotle Mexican Grill, Inc. Common Stock
DPZ NYSE 430 - Domino's Pizza, Inc. Common Stock
TJX NYSE 120 - The TJX Companies, Inc. Common Stock
BBY NYSE 90 - Best Buy Co., Inc. Common Stock
KR NYSE 60 - The Kroger Co. Common Stock
SYY NYSE 76 - Sysco Corporation Common Stock
ADM NYSE 55 - Archer-Daniels-Midland Company Common Stock
CLX NYSE 160 - The Clorox Company Common Stock
HPQ NYSE 35 - HP Inc. Common Stock
HPE NYSE 20 - Hewlett Packard Enterprise Company Common Stock
DELL NYSE 120 - Dell Technologies Inc. Class C Common Stock
ANET NYSE 380 - Arista Networks, Inc. Common Stock
SPY ARCA 590 - SPDR S&P 500 ETF Trust
IVV ARCA 595 - iShares Core S&P 500 ETF
VOO ARCA 545 - Vanguard S&P 500 ETF
VTI ARCA 290 - Vanguard Total Stock Market ETF
IWM ARCA 220 - iShares Russell 2000 ETF
DIA ARCA 430 - SPDR Dow Jones Industrial Average ETF Trust
GLD ARCA 240 - SPDR Gold Shares
SLV ARCA 28 - iShares Silver Trust
USO ARCA 75 - United States Oil Fund, LP
UNG ARCA 14 h United States Natural Gas Fund, LP
XLK ARCA 230 - Technology Select Sector SPDR Fund
XLF ARCA 48 - Financial Select Sector SPDR Fund
XLE ARCA 90 - Energy Select Sector SPDR Fund
XLV ARCA 145 - Health Care Select Sector SPDR Fund
XLI ARCA 135 - Industrial Select Sector SPDR Fund
XLY ARCA 210 - Consumer Discretionary Select Sector SPDR Fund
XLP ARCA 80 - Consumer Staples Select Sector SPDR Fund
XLU ARCA 78 - Utilities Select Sector SPDR Fund
XLB ARCA 90 - Materials Select Sector SPDR Fund
XLRE ARCA 42 - Real Estate Select Sector SPDR Fund
XLC ARCA 95 - Communication Services Select Sector SPDR Fund
SMH NASDAQ 240 - VanEck Semiconductor ETF
ARKK ARCA 55 - ARK Innovation ETF
EEM ARCA 44 - iShares MSCI Emerging Markets ETF
EFA ARCA 80 - iShares MSCI EAFE ETF
VEA ARCA 50 - Vanguard FTSE Developed Markets ETF
VWO ARCA 45 - Vanguard FTSE Emerging Markets ETF
VNQ ARCA 90 - Vanguard Real Estate ETF
VIG ARCA 195 - Vanguard Dividend Appreciation ETF
VYM ARCA 130 - Vanguard High Dividend Yield ETF
SCHD ARCA 28 - Schwab U.S. Dividend Equity ETF
AGG ARCA 99 - iShares Core U.S. Aggregate Bond ETF
LQD ARCA 108 - iShares iBoxx $ Investment Grade Corporate Bond ETF
HYG ARCA 79 - iShares iBoxx $ High Yield Corporate Bond ETF
TIP ARCA 109 - iShares TIPS Bond ETF
GDX ARCA 38 - VanEck Gold Miners ETF
XBI ARCA 95 - SPDR S&P Biotech ETF
KRE ARCA 60 - SPDR S&P Regional Banking ETF
XHB ARCA 110 - SPDR S&P Homebuilders ETF
ITB ARCA 110 - iShares U.S. Home Construction ETF
RSP ARCA 180 - Invesco S&P 500 Equal Weight ETF
MDY ARCA 580 - SPDR S&P MidCap 400 ETF Trust
IJH ARCA 62 - iShares Core S&P Mid-Cap ETF
IJR ARCA 118 - iShares Core S&P Small-Cap ETF
IWF ARCA 390 - iShares Russell 1000 Growth ETF
IWD ARCA 190 - iShares Russell 1000 Value ETF
VUG ARCA 400 - Vanguard Growth ETF
VTV ARCA 175 - Vanguard Value ETF
SPYG ARCA 85 - SPDR Portfolio S&P 500 Growth ETF
SPLG ARCA 69 - SPDR Portfolio S&P 500 ETF
UVXY BATS 20 hn ProShares Ultra VIX Short-Term Futures ETF
VXX BATS 50 hn iPath Series B S&P 500 VIX Short-Term Futures ETN
SPXL ARCA 170 - Direxion Daily S&P 500 Bull 3X Shares
SOXL ARCA 30 - Direxion Daily Semiconductor Bull 3X Shares
SH ARCA 42 - ProShares Short S&P500
SDS ARCA 20 - ProShares UltraShort S&P500
MTUM BATS 200 - iShares MSCI USA Momentum Factor ETF
USMV BATS 90 - iShares MSCI USA Min Vol Factor ETF
JEPI ARCA 58 - JPMorgan Equity Premium Income ETF
BITO ARCA 20 h ProShares Bitcoin Strategy ETF
IBIT NASDAQ 55 - iShares Bitcoin Trust ETF
FBTC BATS 80 - Fidelity Wise Origin Bitcoin Fund
GBTC ARCA 70 - Grayscale Bitcoin Trust ETF
SPTM ARCA 70 - SPDR Portfolio S&P 1500 Composite Stock Market ETF
EWJ ARCA 70 - iShares MSCI Japan ETF
FXI ARCA 30 - iShares China Large-Cap ETF
EWZ ARCA 26 - iShares MSCI Brazil ETF
INDA BATS 52 - iShares MSCI India ETF
KWEB ARCA 30 - KraneShares CSI China Internet ETF
SIL ARCA 35 - Global X Silver Miners ETF
URA ARCA 30 - Global X Uranium ETF
TAN NASDAQ 35 - Invesco Solar ETF
ICLN NASDAQ 13 - iShares Global Clean Energy ETF
XOP ARCA 135 - SPDR S&P Oil & Gas Exploration & Production ETF
OIH ARCA 280 - VanEck Oil Services ETF
XRT ARCA 78 - SPDR S&P Retail ETF
IYR ARCA 95 - iShares U.S. Real Estate ETF
GOVT BATS 23 - iShares U.S. Treasury Bond ETF
BIL ARCA 92 - SPDR Bloomberg 1-3 Month T-Bill ETF
SGOV ARCA 100 - iShares 0-3 Month Treasury Bond ETF
EMB NASDAQ 92 - iShares J.P. Morgan USD Emerging Markets Bond ETF
PFF NASDAQ 32 - iShares Preferred and Income Securities ETF
IAU ARCA 45 - iShares Gold Trust
SPXU ARCA 10 h ProShares UltraPro Short S&P500
UPRO ARCA 80 - ProShares UltraPro S&P500
LABU ARCA 100 h Direxion Daily S&P Biotech Bull 3X Shares
NVDL NASDAQ 60 h GraniteShares 2x Long NVDA Daily ETF
GEO NYSE 25 - The GEO Group, Inc. Common Stock
IMKTA NASDAQ 70 s Ingles Markets, Incorporated Class A Common Stock
EXK AMEX 5 - Endeavour Silver Corp. Common Shares
UEC AMEX 7 - Uranium Energy Corp. Common Stock
NAK AMEX 0.5 hn Northern Dynasty Minerals Ltd. Common Shares
GORO AMEX 0.3 hn Gold Resource Corporation Common Stock
BTG AMEX 3 - B2Gold Corp. Common Shares
NGD AMEX 2.5 - New Gold Inc. Common Shares
SAND NYSE 6 - Sandstorm Gold Ltd. Common Shares
"""


# Crypto pairs against the dollar: no shorting, no margin (flags `hsm`).
_CRYPTO_TABLE = """\
BTC/USD CRYPTO 95000 hsm Bitcoin / US Dollar
ETH/USD CRYPTO 3300 hsm Ethereum / US Dollar
SOL/USD CRYPTO 190 hsm Solana / US Dollar
LTC/USD CRYPTO 100 hsm Litecoin / US Dollar
AVAX/USD CRYPTO 40 hsm Avalanche / US Dollar
LINK/USD CRYPTO 22 hsm Chainlink / US Dollar
"""


@dataclass(frozen=True, slots=True)
class Asset:
    """One listed asset: a US stock or ETF (`us_equity`), or a crypto pair (`crypto`)."""

    symbol: str
    exchange: str
    reference_price: Decimal
    name: str
    active: bool = True
    fractionable: bool = True
    easy_to_borrow: bool = True
    shortable: bool = True
    marginable: bool = True
    asset_class: str = "us_equity"

    @property
    def id(self) -> str:
        return asset_id(self.symbol)

    @property
    def tradable(self) -> bool:
        return self.active

    def wire(self) -> dict[str, Any]:
        """The JSON object of `GET /v2/assets/{symbol}`, every field alpaca-py's `Asset` reads."""
        margin = 30 if self.marginable else 100
        return {
            "id": self.id,
            "class": self.asset_class,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name,
            "status": "active" if self.active else "inactive",
            "tradable": self.tradable,
            "marginable": self.marginable,
            "maintenance_margin_requirement": margin,
            "margin_requirement_long": str(margin),
            "margin_requirement_short": str(margin),
            "shortable": self.shortable,
            "easy_to_borrow": self.easy_to_borrow,
            "fractionable": self.fractionable,
            **(_CRYPTO_INCREMENTS if self.asset_class == "crypto" else _STOCK_INCREMENTS),
            "attributes": self._attributes(),
        }

    def _attributes(self) -> list[str]:
        if self.asset_class == "crypto":
            return []
        return ["fractional_eh_enabled", "has_options"] if self.fractionable else ["has_options"]


_STOCK_INCREMENTS = {"min_order_size": None, "min_trade_increment": None, "price_increment": None}
# A crypto order may be for a sliver of a coin; prices move in cents (the walk's step).
_CRYPTO_INCREMENTS = {"min_order_size": "0.0001", "min_trade_increment": "0.000000001", "price_increment": "0.01"}


def asset_id(symbol: str) -> str:
    """The stable id of `symbol` (also for symbols the table does not list)."""
    return str(uuid.uuid5(_NAMESPACE, symbol))


def _parse(line: str) -> Asset:
    symbol, exchange, price, flags, name = line.split(" ", 4)
    return Asset(
        asset_class="crypto" if exchange == "CRYPTO" else "us_equity",
        symbol=symbol,
        exchange=exchange,
        reference_price=Decimal(price),
        name=name,
        active="i" not in flags,
        fractionable="n" not in flags,
        easy_to_borrow="h" not in flags,
        shortable="s" not in flags,
        marginable="m" not in flags,
    )


@cache
def all_assets() -> dict[str, Asset]:
    """Every listed asset by symbol, in table order."""
    return {asset.symbol: asset for asset in map(_parse, (_TABLE + _CRYPTO_TABLE).splitlines())}


@cache
def _by_id() -> dict[str, Asset]:
    return {asset.id: asset for asset in all_assets().values()}


def find(symbol_or_id: str) -> Asset | None:
    """The asset named by a symbol (any case) or by its id."""
    return all_assets().get(symbol_or_id.upper()) or _by_id().get(symbol_or_id.lower())
