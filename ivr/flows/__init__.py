"""Voice flows written once over the VoiceChannel port."""
