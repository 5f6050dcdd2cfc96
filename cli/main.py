"""Entry point of the ``keras-mammo`` command.

Each sub-command lives in its own module of this package and is registered below.
"""
from __future__ import annotations

import click

from cli.common import filter_stderr, quiet_tensorflow

quiet_tensorflow()


class _Main(click.Group):
    def main(self, args=None, *rest, **kwargs):
        if args is None:   # the real program (arguments from sys.argv), not a test's CliRunner
            filter_stderr()
        return super().main(args, *rest, **kwargs)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="keras-mammo")
def main():
    """keras-mammo: synthetic mammograms with TensorFlow/Keras GANs.

    \b
    Typical workflow:
      keras-mammo generate   --pretrained mias-128 -n 16 --out synthetic/   (no training)
      keras-mammo preprocess --config quickstart
      keras-mammo train      --config quickstart
      keras-mammo generate   --run runs/quickstart -n 16 --out synthetic/
      keras-mammo evaluate   --run runs/quickstart -n 64
      keras-mammo export     --run runs/quickstart

    \b
    Conventions: --run DIR is a training run, --model NAME a registered model,
    --saved-model DIR a SavedModel folder, --config a YAML file or a bundled name,
    --quiet leaves only results, warnings and errors. `keras-mammo VERB --help` shows
    examples.
    """


def _register() -> None:
    from cli.export import export
    from cli.generate import generate
    from cli.preprocess import preprocess
    from cli.train import train

    for cmd in (preprocess, train, generate, export):
        main.add_command(cmd)
    from cli.evaluate import evaluate
    from cli.weights import weights

    main.add_command(evaluate)
    main.add_command(weights)
    from cli.patches import patches
    from cli.utility import utility

    main.add_command(patches)
    main.add_command(utility)
    from cli.serve import serve; main.add_command(serve)  # noqa: E702
    from cli.models import models; main.add_command(models)  # noqa: E702
    # Further sub-commands are registered here, one import + add_command each.
    from cli.sweep import sweep; main.add_command(sweep)  # noqa: E702


_register()

if __name__ == "__main__":
    main()
