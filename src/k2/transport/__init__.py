"""The queues between the feeds and the warehouse, and nothing else.

    direct.py          in-process: a bounded buffer and one writer thread into bronze (k2 run)
    kafka_common.py    what the producer and the consumer share: client settings, broker watch,
                       topics, the spool of undeliverable messages
    kafka_producer.py  feed -> market.crypto.trades.<exchange>.raw (k2 feed); never loads the warehouse
    kafka_consumer.py  consumer group -> bronze, exactly once (k2 sink, k2 run --kafka)

A transport never starts a server, installs a signal handler or opens the warehouse itself: the
services in k2.services assemble it with the rest.
"""
