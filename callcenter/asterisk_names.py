"""Identifiers shared with the dialplan and Asterisk configuration (shared constants).

``dialplan/`` and ``asterisk/`` use these exact names; a contract test keeps them in step.
"""

from __future__ import annotations

#: The Stasis application our ARI link registers (``Stasis(callcenter,<queue>)``).
STASIS_APP = "callcenter"

#: FastAGI script paths (``agi://host:4573/<script>``).
AGI_CALL_OUTCOME = "call-outcome"
AGI_CALLBACK_OFFER = "callback-offer"

#: Default FastAGI port.
AGI_DEFAULT_PORT = 4573
