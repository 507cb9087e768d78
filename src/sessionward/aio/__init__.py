"""sessionward for asyncio: the same sessions, tokens, throttling and stores, as coroutines.

unasync: hand-written (this package's other modules are the sources the sync modules are generated from;
see scripts/gen_sync.py).
"""
