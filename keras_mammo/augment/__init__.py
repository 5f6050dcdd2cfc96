"""Differentiable image augmentations applied to what a GAN's discriminator sees (DiffAugment, ADA)."""
