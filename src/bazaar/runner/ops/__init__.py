"""The local ops view of `bazaar up`: a trace store fed over OTLP/HTTP by every process,
and the JSON the gateway's admin ops page and `bazaar trace ORDER_ID` draw from.

otlp.py       reading an OTLP/HTTP trace export
store.py      the bounded SQLite trace store ($BAZAAR_HOME/traces.db)
waterfall.py  a trace in tree order with offsets: what both views draw
overview.py   processes, outbox lag, dead letters, rates, an order's saga row
server.py     the `ops` process: the OTLP receiver and the JSON API
terminal.py   `bazaar trace ORDER_ID`
"""
