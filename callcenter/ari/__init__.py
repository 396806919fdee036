"""Asterisk REST Interface: typed events, translation to queue facts, REST client and link (edge)."""
