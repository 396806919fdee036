"""Storage adapters: the SQL store (SQLite or PostgreSQL via SQLAlchemy) and Redis (edge)."""
