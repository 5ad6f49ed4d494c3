"""Cache maintenance: analyze reuse, apply the recommended policy, invalidate selectively."""
