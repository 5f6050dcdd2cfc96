"""A plain Keras 3 reference of the thesis G/D (Rahali 2025, §3.3), keras-io style.

The same layers as ``keras_mammo.models.thesis_gan`` at one fixed resolution (no
progressive growing): ``Dense(z → 8×8×256) → BN → ReLU``, ``UpSampling2D → Conv2D 3×3 →
BN → ReLU`` blocks, a 1×1 convolution and tanh; the discriminator a 1×1 "fromGray"
convolution, strided ``Conv2D → LeakyReLU(0.2) → Dropout(0.2)`` blocks, ``Flatten``,
``Dense(1)``. Trained as in keras-io's ``dcgan_overriding_train_step.py``: a ``Model``
subclass with ``train_step``, ``fit``, float32, no XLA. Used by ``bench/bench_train.py``.
"""
import keras
import tensorflow as tf
from keras import layers

G_CH, D_CH = [128, 128, 128, 64, 32, 16], [256, 128, 64, 32, 16, 8]


def build_generator(resolution, latent_dim=128):
    """``(N, latent_dim)`` → ``(N, R, R, 1)`` in ``[-1, 1]``."""
    x = z = keras.Input((latent_dim,))
    x = layers.Reshape((8, 8, 256))(layers.Dense(8 * 8 * 256, use_bias=False)(x))
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    for i in range(resolution.bit_length() - 4):  # 16, 32, ..., resolution
        x = layers.Conv2D(G_CH[i], 3, padding="same", use_bias=False)(layers.UpSampling2D(2)(x))
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    return keras.Model(z, layers.Activation("tanh")(layers.Conv2D(1, 1)(x)), name="generator")


def build_discriminator(resolution):
    """``(N, R, R, 1)`` → ``(N, 1)`` logits."""
    n = resolution.bit_length() - 4
    x = img = keras.Input((resolution, resolution, 1))
    x = layers.LeakyReLU(0.2)(layers.Conv2D(max(1, D_CH[n - 1] // 2), 1)(x))
    for i in reversed(range(n)):
        x = layers.Dropout(0.2)(layers.LeakyReLU(0.2)(layers.Conv2D(D_CH[i], 3, strides=2, padding="same")(x)))
    return keras.Model(img, layers.Dense(1)(layers.Flatten()(x)), name="discriminator")


class PlainGAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim=128):
        super().__init__()
        self.discriminator, self.generator, self.latent_dim = discriminator, generator, latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    def train_step(self, real):
        batch = tf.shape(real)[0]
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = (self.loss_fn(tf.ones_like(real_logits), real_logits)
                      + self.loss_fn(tf.zeros_like(fake_logits), fake_logits))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self.loss_fn(tf.ones_like(fake_logits), fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        return {"d_loss": d_loss, "g_loss": g_loss}


def build_plain_gan(resolution, latent_dim=128):
    """The compiled reference GAN at ``resolution`` (thesis optimizers: Adam 1e-5 D, 1e-4 G, β1 0.5)."""
    gan = PlainGAN(build_discriminator(resolution), build_generator(resolution, latent_dim), latent_dim)
    gan.compile(keras.optimizers.Adam(1e-5, beta_1=0.5), keras.optimizers.Adam(1e-4, beta_1=0.5),
                keras.losses.BinaryCrossentropy(from_logits=True))
    return gan
