"""Voice flows, written once over the VoiceChannel port and run on ARI or AGI channels."""
