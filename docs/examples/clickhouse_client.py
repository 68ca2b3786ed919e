"""Read K2's embedded store with clickhouse-connect, as from any ClickHouse server.

    k2 serve &            # or k2 run: both serve ClickHouse's HTTP interface on K2_METRICS_ADDR
    python docs/examples/clickhouse_client.py [HOST:PORT]

DBeaver, Grafana's ClickHouse datasource and clickhouse-client (HTTP) connect the same way:
host and port of the endpoint, database k2, user default, the password of K2_READ_PASSWORD if set.
"""

import os
import sys

import clickhouse_connect

host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9108").rpartition(":")
client = clickhouse_connect.get_client(host=host, port=int(port), database="k2",
                                       password=os.environ.get("K2_READ_PASSWORD", ""))
print(client.query("SELECT exchange, count() AS trades, min(timestamp), max(timestamp) FROM silver_trades_v2 "
                   "GROUP BY exchange ORDER BY exchange").result_rows)
candles = client.query_arrow("SELECT window_start, open_price, close_price, volume FROM ohlcv_1h_cross "
                             "WHERE canonical_symbol = {s:String} ORDER BY window_start", parameters={"s": "BTC/USD"})
print(candles.schema)
print(client.query_df("SELECT canonical_symbol, count() AS n FROM silver_trades_v2 GROUP BY 1 ORDER BY n DESC"))
