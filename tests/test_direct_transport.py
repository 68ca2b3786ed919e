"""The direct transport (feed -> writer thread -> bronze) on a real embedded warehouse."""

from __future__ import annotations

from fixtures import k2db
from fixtures import make_frames as mf
from k2.exchanges import get_adapter
from k2.transport.direct import DirectTransport

T0_MS = 1_784_116_800_000


def binance_rows(first_id: int, n: int) -> list[tuple]:
    adapter = get_adapter("binance")
    rows = []
    for i in range(first_id, first_id + n):
        frame = mf.binance_trade("BTCUSDT", i, "97512.34000000", "0.00100000", T0_MS + i, i % 2 == 0)
        rows.extend(adapter.parse(frame, (T0_MS + i) * 1000 + 500).rows)
    return rows


def test_a_backlog_is_written_in_batches_of_at_most_max_rows_exactly_once(clean_warehouse):
    """When the feed outruns the writer, the backlog goes in batches of `max_rows` (one INSERT of
    everything buffered took k2 run to ~1 GB at 150k trades/s), in order, nothing lost or doubled."""
    wh = clean_warehouse
    adapter = get_adapter("binance")
    transport = DirectTransport(wh, [adapter], max_rows=1_000, max_delay_s=0.05)
    writer = transport.writers["binance"]
    batch_sizes: list[int] = []
    real_commit = writer.commit

    def commit(batch, source):  # the real insert, with its size noted
        batch_sizes.append(batch.n)
        return real_commit(batch, source=source)

    writer.commit = commit
    rows = binance_rows(1, 2_500)
    for i in range(0, len(rows), 500):  # buffered before the writer runs: a backlog of 2,500
        transport.submit(adapter, rows[i:i + 500])
    assert transport.buffered == 2_500
    transport.start()
    transport.close(timeout=120)

    assert batch_sizes == [1_000, 1_000, 500]
    assert transport.buffered == 0
    assert transport.stats.written["binance"] == 2_500
    assert k2db.count(wh, "bronze_trades_binance") == 2_500
    assert k2db.count(wh, "silver_trades_v2") == 2_500
    ids = [int(r[0]) for r in wh.rows("SELECT trade_id FROM k2.bronze_trades_binance ORDER BY trade_id")]
    assert ids == list(range(1, 2_501))
    # the batches were cut in arrival order: each one's ids follow the previous one's
    first_ids = wh.rows("SELECT min(trade_id) FROM k2.bronze_trades_binance GROUP BY batch_id ORDER BY 1")
    assert [int(r[0]) for r in first_ids] == [1, 1_001, 2_001]
