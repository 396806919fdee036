"""Identifiers shared with the dialplan and Asterisk configuration (shared constants).

``dialplan/`` and ``asterisk/`` use these exact names; a contract test keeps them in step.
"""

from __future__ import annotations

#: The Stasis application our ARI link registers (``Stasis(callcenter,<queue>)``).
STASIS_APP = "callcenter"

#: FastAGI script paths (``agi://host:4573/<script>``).
AGI_CALL_OUTCOME = "call-outcome"
AGI_CALLBACK_OFFER = "callback-offer"
#: Take a message: ``AGI(agi://host:4573/voicemail,<queue>)``; needs ``CALLCENTER_VOICEMAIL_SPOOL_DIR``.
AGI_VOICEMAIL = "voicemail"

#: Default FastAGI port.
AGI_DEFAULT_PORT = 4573

#: The classic AGI program Asterisk runs from its ``agi-bin`` (``AGI(callcenter-outcome,<api url>)``):
#: the console script of ``callcenter.agi.classic``, for sites that cannot reach the FastAGI server.
AGI_CLASSIC_OUTCOME = "callcenter-outcome"

# -- dialplan contexts of ``dialplan/extensions_callcenter.conf`` (entered with ``Gosub``) ----------

#: ARI-native entry: ``Gosub(callcenter-queue,s,1(<queue>))``.
CONTEXT_ARI_QUEUE = "callcenter-queue"
#: ``app_queue`` entry with the FastAGI hooks: ``Gosub(callcenter-appqueue,s,1(<queue>[,<max wait s>]))``.
CONTEXT_APP_QUEUE = "callcenter-appqueue"
#: The queue's exit-key context (``context=`` in ``queues.conf``): the callback offer.
CONTEXT_QUEUE_EXIT = "callcenter-appqueue-exit"
#: The hang-up handler that reports the call's outcome.
CONTEXT_OUTCOME_HOOK = "callcenter-outcome-hook"

#: The key that leaves an ``app_queue`` queue for the callback offer.
QUEUE_EXIT_KEY = "1"
#: The key that leaves an ``app_queue`` queue to leave a message (the ``voicemail`` script); the ARI
#: queue's key is ``CALLCENTER_VOICEMAIL_KEY``, the same by default.
QUEUE_VOICEMAIL_KEY = "9"

# -- global variables a site sets in ``[globals]`` -----------------------------------------------

#: The FastAGI base URL, e.g. ``agi://127.0.0.1:4573``.
GLOBAL_AGI_URL = "CC_AGI_URL"
#: ``fastagi`` (the default) or ``classic``: how the outcome hook reports.
GLOBAL_OUTCOME_HOOK = "CC_OUTCOME_HOOK"
#: The HTTP API base URL the classic AGI program posts to, e.g. ``http://127.0.0.1:8080``.
GLOBAL_API_URL = "CC_API_URL"

# -- channel variables our dialplan sets and our AGI scripts read or set --------------------------

#: The queue the caller was sent to.
VAR_QUEUE = "CC_QUEUE"
#: Times as Unix seconds with milliseconds on Asterisk's clock (``${STRFTIME(,,%s.%3q)}``).
VAR_ARRIVED_AT = "CC_ARRIVED_AT"
VAR_QUEUE_JOINED_AT = "CC_QUEUE_JOINED_AT"  # the first Queue() of the call
VAR_QUEUE_ENTERED_AT = "CC_QUEUE_ENTERED_AT"  # the latest Queue() (back in the queue after the offer)
VAR_QUEUE_LEFT_AT = "CC_QUEUE_LEFT_AT"  # Queue() returned, or the caller pressed the exit key
#: The key pressed to leave the queue, and the caller's place then (``QUEUEPOSITION``).
VAR_EXIT_KEY = "CC_EXIT_KEY"
VAR_EXIT_POSITION = "CC_EXIT_POSITION"
#: Set to :data:`CALLBACK_ACCEPTED` by the callback-offer script when the caller takes a callback.
VAR_CALLBACK = "CC_CALLBACK"
CALLBACK_ACCEPTED = "accepted"
#: Set to :data:`VOICEMAIL_RECORDED` by the voicemail script as the recording starts: the outcome is
#: ``voicemail`` (what was said is kept even when the caller hangs up to end the message).
VAR_VOICEMAIL = "CC_VOICEMAIL"
VOICEMAIL_RECORDED = "recorded"
#: Why the dialplan could not serve the call (``unknown_queue``): the outcome is ``failed``.
VAR_FAILED = "CC_FAILED"
#: Set by the call-outcome script on the channel: the outcome it recorded (for CDRs and logs).
VAR_OUTCOME = "CC_OUTCOME"
#: Used inside the dialplan only: the max wait and Queue() options given to callcenter-appqueue.
VAR_MAX_WAIT = "CC_MAX_WAIT"
VAR_QUEUE_OPTIONS = "CC_QUEUE_OPTIONS"
