"""Augmentations applied to every image the discriminator sees (ADA, DiffAugment)."""
