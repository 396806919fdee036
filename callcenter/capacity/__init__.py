"""Capacity: queue models, wait-time predictors, forecasts and callback slot capacity (pure core + service)."""
