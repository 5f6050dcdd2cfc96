"""The ``keras-mammo`` command line: a thin click layer over :mod:`keras_mammo`."""
