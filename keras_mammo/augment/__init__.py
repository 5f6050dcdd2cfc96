"""Image augmentations: what a GAN's discriminator sees (DiffAugment, ADA), and the classical
augmentation policy of classifier training patches (:mod:`~keras_mammo.augment.classical`)."""
