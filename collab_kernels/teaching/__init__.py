"""Teaching sessions: roles through jupyter_server's authorizer, presence, per-person tokens."""
