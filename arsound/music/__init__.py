"""Music generation on the VQ-VAE tokenizer, Jukebox style (Dhariwal et al., 2020, arXiv:2005.00341):
``prior`` (a sparse-transformer prior over one level's codes, with the upsampling conditioner of the level
above), ``generator`` (the hierarchy: a top prior, upsamplers, the tokenizer; windowed, primed, continued
and upsampled sampling)."""
