"""Stage 1 of JoyGen, audio → motion: the new voice becomes 64 BFM expression coefficients per 25 fps frame.

HuBERT-large features and Praat pitch feed Real3DPortrait's audio2secc VAE (`audio2secc`), sampled exactly
as the official ``inference_audio2motion.py`` does (`audio_to_motion`). The expressions drive stage 2's
mouth depth map; nothing else of the frame comes from here.
"""
