"""Password hashing, tokens, roles and ownership rules. No web framework imports."""
