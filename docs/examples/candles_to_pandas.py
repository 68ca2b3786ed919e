"""Exact candles into pandas, and a chart: the README's notebook example as a script.

    K2_DATA_DIR=k2data python docs/examples/candles_to_pandas.py [SYMBOL] [EXCHANGE]

Works the same whether `k2 run` is ingesting into the data dir (the read goes through it) or not.
"""

import sys

import k2

symbol = sys.argv[1] if len(sys.argv) > 1 else "BTC/USDT"
exchange = sys.argv[2] if len(sys.argv) > 2 else "binance"

db = k2.connect()                                                      # ./k2data or K2_DATA_DIR
df = db.ohlcv(symbol, "1h", exchange=exchange, format="pandas")        # exact Decimals, UTC times
print(df[["time", "open", "high", "low", "close", "volume", "trade_count"]].tail(5).to_string(index=False))
print(f"{len(df)} candles; close is {type(df['close'].iloc[-1]).__name__}, time is {df['time'].dtype}")

try:
    import matplotlib

    matplotlib.use("Agg")
    ax = df.assign(close=df["close"].astype(float)).plot(x="time", y="close", title=f"{symbol} on {exchange}")
    ax.figure.savefig("candles.png")
    print("wrote candles.png")
except ImportError:
    print("(pip install matplotlib to draw candles.png)")
