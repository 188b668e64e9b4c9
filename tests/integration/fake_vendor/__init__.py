"""A made-up SIS vendor added the way a real one is: one hook module, one client module (and the test
server tests/integration/vendor_servers/tablesis.py)."""
