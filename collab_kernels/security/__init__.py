"""Multi-user security applied to the whole server when the extension loads.

- ``guard``: every routed handler class gets a guarded subclass that asks the authorizer
  (for the classes upstream leaves open) and renders only the requester's own token;
- ``tokens``: which token a page may carry;
- ``logs``: login tokens scrubbed from every log line.
"""
