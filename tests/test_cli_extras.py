"""The rough edges of optional verbs (issue 24, item 8): a missing extra is one ``Error:``
line naming the extra to install (``serve`` died with a raw ``ModuleNotFoundError:
No module named 'tensorflow_serving'`` traceback), and a Ray that does not start is one
line with the ``--engine local`` hint (not Ray's raw "The current node timed out during
startup" traceback)."""
from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from cli.main import main


def _without(monkeypatch, *names):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in names else real(name, *a, **k))


def _error_line(res) -> str:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return lines[0]


def test_serve_without_its_extra_names_it(monkeypatch, tmp_path):
    _without(monkeypatch, "tensorflow_serving")
    res = CliRunner().invoke(main, ["serve", "--model_name", "m", "--model_base_path", str(tmp_path)])
    assert _error_line(res) == ("Error: keras-mammo serve needs the 'serve' extra (tensorflow_serving is not "
                                "installed): pip install 'keras-mammo[serve]'")


@pytest.mark.parametrize("args, missing, what", [
    ([], "ray", "keras-mammo sweep --engine ray"),
    (["--engine", "local"], "pyDOE3", "keras-mammo sweep"),
    (["--plan"], "statsmodels", "keras-mammo sweep"),
])
def test_sweep_without_its_extra_names_it(monkeypatch, args, missing, what):
    _without(monkeypatch, missing)
    res = CliRunner().invoke(main, ["sweep", "--config", "taguchi-dcgan", *args])
    assert _error_line(res) == (f"Error: {what} needs the 'sweep' extra ({missing} is not installed): "
                                f"pip install 'keras-mammo[sweep]'")


def test_sweep_plan_and_local_engine_do_not_need_ray(monkeypatch):
    _without(monkeypatch, "ray")
    res = CliRunner().invoke(main, ["sweep", "--config", "taguchi-dcgan", "--plan"])
    assert res.exit_code == 0 and "design L9" in res.output, res.output


def test_ray_that_does_not_start_is_one_line_with_the_local_hint(monkeypatch):
    pytest.importorskip("ray")
    import ray

    from keras_mammo.errors import EngineStartError
    from keras_mammo.sweep.backends import ray_init

    def timed_out(**kwargs):
        raise Exception("The current node timed out during startup. This could happen because some of the Ray "
                        "processes failed to startup.\n  (a long Ray explanation follows)")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(EngineStartError) as info:
        ray_init()
    assert str(info.value) == ("Ray did not start: The current node timed out during startup. This could happen "
                               "because some of the Ray processes failed to startup.; on a loaded machine run the "
                               "trials without Ray: --engine local")
