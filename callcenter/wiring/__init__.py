"""The composition root's feature wiring: one module per feature, each called from ``callcenter/app.py``.

Wiring only: settings become service settings, adapters are opened and handed to services. No rule
of the call centre lives here.
"""
