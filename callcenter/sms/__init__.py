"""SMS follow-up: keywords, quiet hours, consent, templates, encoding and trigger rules (pure core)."""
