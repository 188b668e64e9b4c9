"""Local HTTP servers implementing the SIS vendors' API contracts, over a contract SIS database.

Each listens on 127.0.0.1 only, on a free port, in a daemon thread; faults
(429 with Retry-After, 5xx, expiring tokens) are injected per request and every
request is logged (method, path, query, status) so tests can count them.
"""
