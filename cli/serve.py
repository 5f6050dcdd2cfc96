"""``keras-mammo serve``: TensorFlow Serving's REST and gRPC APIs for exported generators."""
from __future__ import annotations

import click

from cli.common import quiet_option, user_errors


@click.command(context_settings={"max_content_width": 100})
@click.option("--model_name", default=None,
              help="Name clients use in /v1/models/<name> and ModelSpec.name [default with --pretrained: its name].")
@click.option("--model_base_path", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of numeric version folders (saved_models/<name>), as tensorflow_model_server.")
@click.option("--pretrained", default=None, metavar="NAME",
              help="Serve a pretrained generator shipped with keras-mammo (`keras-mammo models`) instead of "
                   "--model_base_path.")
@click.option("--rest_api_port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="REST port (0: no REST).")
@click.option("--port", type=click.IntRange(0, 65535), default=8500, show_default=True, help="gRPC port (0: no gRPC).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default answers this machine only (0.0.0.0: every interface).")
@click.option("--max_batch_size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most images per request (the `count` input or the batch dimension).")
@click.option("--max_request_bytes", type=click.IntRange(min=1024), default=16 * 1024 * 1024, show_default=True,
              help="Largest request body (REST) or message (gRPC), bytes.")
@click.option("--rest_api_timeout_in_ms", type=click.IntRange(min=1), default=30000, show_default=True,
              help="REST requests still running after this are answered 504.")
@click.option("--rest_api_num_threads", type=click.IntRange(min=1), default=None,
              help="Concurrent model executions per front end [default: CPU count].")
@click.option("--file_system_poll_wait_seconds", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between scans of the base path for new or removed versions.")
@quiet_option
@user_errors
def serve(model_name, model_base_path, pretrained, rest_api_port, port, host, max_batch_size, max_request_bytes,
          rest_api_timeout_in_ms, rest_api_num_threads, file_system_poll_wait_seconds, quiet):
    """Serve a SavedModel's versions with TensorFlow Serving's REST and gRPC APIs.

    Flags are tensorflow_model_server's, so scripts can swap one for the other. Every version
    folder is loaded; requests without a version go to the newest; a newly exported version is
    picked up without a restart.

    \b
    Examples:
      keras-mammo serve --pretrained mias-128
      keras-mammo serve --model_name=mias --model_base_path=saved_models/mias
      curl localhost:8501/v1/models/mias
      curl -d '{"signature_name": "generate_png", "inputs": {"count": 2, "seed": 7}}' \\
           localhost:8501/v1/models/mias:predict
      keras-mammo generate --server http://127.0.0.1:8501 --model mias -n 100 --out synthetic/
    """
    if (model_base_path is None) == (pretrained is None):
        raise click.UsageError("give exactly one of --model_base_path or --pretrained")
    if pretrained is not None:
        from keras_mammo.pretrained import pretrained_path

        model_base_path, model_name = str(pretrained_path(pretrained)), model_name or pretrained
    elif model_name is None:
        raise click.UsageError("--model_base_path needs --model_name")
    import logging

    from keras_mammo.errors import require_extra

    require_extra("serve", "keras-mammo serve")
    from keras_mammo.serving.manager import Limits
    from keras_mammo.serving.server import serve as run_server

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    limits = Limits(max_batch_size=max_batch_size, max_request_bytes=max_request_bytes,
                    timeout_s=rest_api_timeout_in_ms / 1000.0)
    try:
        run_server(model_name, model_base_path, host, rest_api_port, port, limits,
                   file_system_poll_wait_seconds, rest_api_num_threads)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
