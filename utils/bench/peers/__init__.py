"""The peers measured side by side with us, each from its own pinned environment (see environment)."""
