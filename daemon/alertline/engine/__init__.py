"""The engine: the façade, the ledger that alone changes state, and the helpers that decide."""
