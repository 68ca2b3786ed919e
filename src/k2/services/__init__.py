"""The long-running services, each assembled here and nowhere else.

    lifecycle.py  what every service shares: stop on SIGINT/SIGTERM, the loopback API server with its
                  run file, orderly shutdown
    pipeline.py   a feed runtime plus a transport, with live progress and an end-of-run summary; knows
                  nothing of the warehouse (k2 feed runs it without one)
    run.py        k2 run: the pipeline into the warehouse, direct or through Kafka (--kafka)
    feed.py       k2 feed: the pipeline into Kafka, no warehouse, no chDB, no pyarrow
    sink.py       k2 sink: Kafka into the warehouse
    record.py     k2 record: raw frames to a file
    demo.py       k2 demo: the simulator, k2 run, candles and validation, offline
    signals.py    SIGTERM before a service runs (the command line's start): a clean stop, exit 143

Only modules in this package (and the simulator, a program of its own) start servers or install
signal handlers; tests/test_layout.py checks it.
"""
