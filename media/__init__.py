"""Audio: framing, speech detection, transcription and prompts (no call-centre knowledge)."""
