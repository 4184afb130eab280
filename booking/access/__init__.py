"""Who the staff are and what they may touch: roles and permissions (``roles``), location
scoping (``scoping``), the audit writer (``audit``) and the staff-only page decorator
(``decorators``). Everything above it in booking asks here; it imports only the models.
"""
