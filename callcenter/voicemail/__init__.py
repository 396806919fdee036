"""Voicemail: recordings, their speech detection and transcription, triage and retention."""
