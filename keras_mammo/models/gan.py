"""The base GAN: one ``keras.Model`` that owns a generator and a discriminator.

Following the keras-io GAN examples, a GAN overrides ``compile(g_optimizer,
d_optimizer)`` and ``train_step`` and is driven by ``fit``. On top of that this base
class gives every model in keras-mammo:

- **stateless, resumable randomness**: the latent vectors of step ``k`` are drawn with
  ``tf.random.stateless_normal(seed=(run_seed, k, replica))``, so they depend on the step
  counter (restored from checkpoints), never on hidden RNG state;
- **one list of variables to checkpoint** (:meth:`checkpoint_variables`): both networks,
  both optimizers' slots and step counters, dropout seed states;
- **export signatures** for TF Serving (:meth:`export_signatures`);
- **replica-aware loss scaling** for ``tf.distribute`` strategies;
- **small-data training machinery** (issue 9), inherited from
  :class:`~keras_mammo.models.recipe.SmallDataRecipe` and configured by
  :meth:`GAN.configure_training` from ``train.*``: an EMA generator, augmentation of every
  image the discriminator sees (ADA or DiffAugment), the hinge loss and the lazy R1
  penalty. Every subclass's ``train_step`` is wrapped (``__init_subclass__``) so that
  these hooks run around it.

Batches fed to :meth:`train_step` are dicts: ``"image"`` ``(B, H, W, 1) float32`` in
``[-1, 1]``, plus ``"breast_mask"`` / ``"lesion_mask"`` ``(B, H, W, 1) float32`` in
``{0, 1}`` and ``"label"`` ``(B,) int32`` for models whose :attr:`GAN.inputs_needed`
name them.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_mammo.errors import ConfigError
from keras_mammo.models.gan_utils import step_seed
from keras_mammo.models.recipe import SmallDataRecipe, with_training_hooks


def images_to_uint8(images):
    """``[-1, 1]`` float images → ``uint8`` in ``[0, 255]`` (rounded, clipped)."""
    x = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


class GAN(SmallDataRecipe, keras.Model):
    """Base class of all keras-mammo GANs.

    Subclasses implement :meth:`train_step` (using :meth:`latent_batch` for noise and
    :meth:`scale_loss` before taking gradients) and may override :meth:`generate`,
    :meth:`export_signatures`, :meth:`set_stage`.

    Args:
        generator: maps ``(N, latent_dim)`` float32 → ``(N, H, W, 1)`` in ``[-1, 1]``.
        discriminator: maps ``(N, H, W, 1)`` → ``(N, 1)`` logits/scores.
        latent_dim: length of the latent vector z.
        seed: run seed; latent vectors are a function of ``(seed, step)``.

    Attributes:
        inputs_needed: batch keys besides ``"image"`` this model trains on.
        progressive: whether :meth:`set_stage` can grow the resolution.
        default_optimizer: published Adam settings (learning rates, β1, β2).
    """

    inputs_needed: tuple[str, ...] = ()
    progressive: bool = False
    default_optimizer = {"g_learning_rate": 2e-4, "d_learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("train_step")
        if fn is not None and not getattr(fn, "_with_training_hooks", False):
            cls.train_step = with_training_hooks(fn)

    def __init__(self, generator, discriminator, latent_dim: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.seed = int(seed)
        self.resolution = None

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skip Keras' symbolic build when every layer is built (:meth:`build_networks` ran).

        Under ``MultiWorkerMirroredStrategy`` Keras 3 (3.15) tries to ``reduce`` the first
        distributed batch, a ``PerReplica`` wrapping the batch dict, and fails ("Attempt to
        convert a value (PerReplica:{0: {...}}) with an unsupported type (dict)";
        keras-team/keras#20585). A GAN compiles no Keras loss, metrics or optimizer, so the
        symbolic build has nothing to create once the networks are built.
        """
        if self.built and all(layer.built for layer in self._flatten_layers()):
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # --- optimizers -------------------------------------------------------------------
    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Attach the two optimizers (and anything ``keras.Model.compile`` takes)."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def step(self):
        """Generator updates so far (``g_optimizer.iterations``), int64 tensor."""
        return self.g_optimizer.iterations

    # --- randomness ---------------------------------------------------------------------
    def latent_batch(self, batch_size, stream: int = 0):
        """Latent vectors for the current step: ``(batch_size, latent_dim) float32 ~ N(0, 1)``.

        ``stream`` separates draws made in the same step (e.g. discriminator vs
        generator update). Deterministic in ``(seed, step, stream, replica)``.
        """
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=step_seed(self, stream))

    @staticmethod
    def scale_loss(loss):
        """Divide by the number of replicas: gradients are summed across replicas."""
        strategy = tf.distribute.get_strategy()
        return loss / tf.cast(strategy.num_replicas_in_sync, loss.dtype)

    @staticmethod
    def fixed_latents(n: int, latent_dim: int, seed: int):
        """``(n, latent_dim) float32`` latent vectors fixed by ``seed`` (sample grids, export)."""
        return tf.random.stateless_normal((n, latent_dim), seed=tf.constant([int(seed), 0x5EED], tf.int64))

    # --- inference ------------------------------------------------------------------------
    def generate(self, latents, conditions: dict | None = None):
        """Images from latent vectors: ``(N, latent_dim)`` → ``(N, H, W, 1) float32`` in ``[-1, 1]``."""
        return self.generator(latents, training=False)

    def generate_traced(self, latents, conditions: dict | None = None):
        """:meth:`generate` through a cached ``tf.function`` (same images, no per-layer eager dispatch).

        One function per stage (:meth:`stage_state`: a progressive model's resolution is
        fixed at trace time), traced with ``reduce_retracing`` so every batch size shares
        one graph. Variables are read when the function runs, so restored or EMA weights
        assigned later are used. Pass tensors, not NumPy arrays or Python numbers, for
        anything that changes between calls.

        Args, returns, raises: as :meth:`generate`.
        """
        cache = self.__dict__.get("_generate_fns")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_generate_fns", cache)
        key = repr(sorted(self.stage_state().items()))
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = tf.function(self.generate, reduce_retracing=True)
        return fn(latents, conditions)

    def sample(self, latents, batch: dict | None = None):
        """Images for sample grids: ``(N, H, W, 1) float32`` in ``[-1, 1]``.

        ``batch`` is a fixed batch of real data (same keys as in :meth:`train_step`);
        conditional models take their masks/labels from it, unconditional ones ignore it.
        """
        return self.generate(latents)

    def call(self, latents, training=False):
        return self.generator(latents, training=training)

    def build_networks(self) -> None:
        """Create every variable (all stages) so checkpoints always hold the same list.

        Subclasses that override it must set ``self.built = True`` at the end.
        """
        z = ops.zeros((1, self.latent_dim))
        img = self.generator(z, training=False)
        self.discriminator(img, training=False)
        self.built = True  # fit() must not trace call() on a data batch to build the model

    def set_stage(self, resolution: int, fade_in_images: int = 0, stage_start_step: int = 0,
                  global_batch: int = 1) -> None:
        """Switch to training at ``resolution`` (only progressive models grow).

        Args:
            resolution: image side in pixels for this stage.
            fade_in_images: images over which a new block fades in (progressive models).
            stage_start_step: generator step at which the stage began.
            global_batch: images per step over all replicas.
        """
        if not self.progressive and self.resolution is not None and resolution != self.resolution:
            raise ConfigError(f"train.stages: model {self.name!r} trains at one resolution "
                              f"({self.resolution}); got a stage at {resolution}")
        self.resolution = resolution

    def stage_state(self) -> dict:
        """Python-side state saved with checkpoints (progressive models add fade-in progress)."""
        return {"resolution": self.resolution}

    # --- checkpointing ------------------------------------------------------------------
    def checkpoint_variables(self) -> list:
        """Every variable that defines the training state, in a fixed order.

        The model's own variables (both networks, BatchNorm statistics, dropout seed
        states, fade-in counters) followed by both optimizers' variables (iterations,
        learning rate, Adam moments), then the EMA generator's copies and ADA's state
        when ``train.ema`` / ``train.augment: ada`` are set.
        """
        out = list(self.variables) + list(self.g_optimizer.variables) + list(self.d_optimizer.variables)
        if self.ema is not None:
            out += self.ema.variables() + [self.ema.beta]
        if self.ada is not None:
            out += self.ada.variables()
        return out

    def build_optimizers(self) -> None:
        """Create optimizer slots for every trainable variable (before restoring)."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    # --- export -------------------------------------------------------------------------
    def export_trackables(self) -> dict:
        """Objects whose variables the export signatures use (saved into the SavedModel)."""
        return {"generator": self.generator}

    def export_signatures(self) -> dict:
        """TF-Serving signatures of an unconditional generator.

        - ``serving_default``: ``latent`` float32 ``[N, latent_dim]`` → ``images`` uint8
          ``[N, H, W, 1]``.
        - ``generate``: ``count`` int32 scalar, ``seed`` int64 scalar → ``images`` uint8
          ``[count, H, W, 1]``; deterministic (stateless RNG).
        """
        latent_dim = self.latent_dim
        model = self

        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="latent")])
        def serving_default(latent):
            return {"images": images_to_uint8(model.generate(latent))}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="count"),
                                      tf.TensorSpec([], tf.int64, name="seed")])
        def generate(count, seed):
            z = tf.random.stateless_normal(tf.stack([count, latent_dim]), seed=tf.stack([seed, tf.constant(0x5EED, tf.int64)]))
            return {"images": images_to_uint8(model.generate(z))}

        return {"serving_default": serving_default, "generate": generate}


class ProgressiveGAN(GAN):
    """A GAN that grows its resolution in stages with ProGAN fade-in (Karras et al. 2018, §3).

    The generator and discriminator expose ``res_list`` (their resolutions, lowest
    first), a settable ``resolution`` and an ``alpha`` variable, and take ``alpha=`` in
    ``call``. The fade-in weight is a function of the generator step, so it is restored
    exactly with a checkpoint: ``α = clip((step − stage_start_step) · global_batch /
    fade_in_images, 0, 1)``; the lowest resolution never fades.
    """

    progressive = True

    def __init__(self, generator, discriminator, latent_dim: int, seed: int = 0, **kwargs):
        super().__init__(generator, discriminator, latent_dim, seed=seed, **kwargs)
        self.resolution = generator.resolution
        self.fade_in_images = 0
        self.stage_start_step = 0
        self.global_batch = 1

    def build_networks(self) -> None:
        self.generator.build()
        self.discriminator.build()
        self.built = True

    def set_stage(self, resolution: int, fade_in_images: int = 0, stage_start_step: int = 0,
                  global_batch: int = 1) -> None:
        """Grow to ``resolution``; fade the new block in over ``fade_in_images`` real images.

        Args:
            resolution: stage resolution (one of ``generator.res_list``).
            fade_in_images: images over which α rises from 0 to 1 (0 = no fade-in).
            stage_start_step: generator step at which this stage began (for α).
            global_batch: images per step over all replicas.

        Raises:
            ConfigError: ``resolution`` is not one of the model's resolutions.
        """
        if resolution not in self.generator.res_list:
            raise ConfigError(f"train.stages: resolution {resolution} not in the model's resolutions "
                              f"{self.generator.res_list}")
        self.resolution = self.generator.resolution = self.discriminator.resolution = resolution
        first = resolution == self.generator.res_list[0]
        self.fade_in_images = 0 if first else int(fade_in_images)
        self.stage_start_step = int(stage_start_step)
        self.global_batch = int(global_batch)
        self.train_function = None  # the step depends on the stage: retrace

    def stage_state(self) -> dict:
        return {"resolution": self.resolution, "fade_in_images": self.fade_in_images,
                "stage_start_step": self.stage_start_step, "global_batch": self.global_batch}

    def current_alpha(self, step=None):
        """Fade-in weight α in ``[0, 1]`` at generator step ``step`` (default: now)."""
        if not self.fade_in_images:
            return tf.constant(1.0)
        step = self.step if step is None else step
        seen = tf.cast(step - self.stage_start_step, tf.float32) * float(self.global_batch)
        return tf.clip_by_value(seen / float(self.fade_in_images), 0.0, 1.0)

    def sync_alpha(self) -> float:
        """Store the current α in both networks (used by inference between steps)."""
        a = float(self.current_alpha())
        self.generator.alpha.assign(a)
        self.discriminator.alpha.assign(a)
        return a
