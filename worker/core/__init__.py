"""The floor every stage may use: Redis keys and connection, counters, logging, pools, redaction."""
