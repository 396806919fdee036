"""Domain model: vocabulary, phone numbers, records and domain events (pure)."""
