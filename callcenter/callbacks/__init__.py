"""Callbacks: the record's life, promises, slot capacity and the keep-my-place policy."""
