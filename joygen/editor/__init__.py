"""Stage 3 of JoyGen, the edit: re-draw the lower face from the voice and the mouth depth, then paste it back.

Whisper-tiny states of the voice, 50 tokens per frame (`whisper`) → SD-VAE latents of [lower-half-masked
face, reference face, mouth depth], 12 channels, and one UNet step with audio cross-attention, decoded
(`mouth_editor`) → BiSeNet face parsing (`face_parsing`) → the official paste-back (`paste_back`).
"""
