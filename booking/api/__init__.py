"""The API: the DRF toolkit (``toolkit``) and permissions (``permissions``) every endpoint module
uses, the endpoint modules (``public``, ``appointments``, ``calendar``, ``plans``, ``series``),
replayed answers (``idempotency``) and one ``urls``.
"""
