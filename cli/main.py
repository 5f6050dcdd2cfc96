"""Entry point of the ``keras-mammo`` command.

Each sub-command lives in its own module of this package and is registered below.
"""
from __future__ import annotations

import click

from cli.common import quiet_tensorflow

quiet_tensorflow()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="keras-mammo")
def main():
    """keras-mammo: synthetic mammograms with TensorFlow/Keras GANs.

    \b
    Typical workflow:
      keras-mammo preprocess --config configs/quickstart.yaml
      keras-mammo train      --config configs/quickstart.yaml
      keras-mammo generate   --run runs/quickstart -n 16 --out samples/
      keras-mammo export     --run runs/quickstart
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
    # Further sub-commands are registered here, one import + add_command each.


_register()

if __name__ == "__main__":
    main()
