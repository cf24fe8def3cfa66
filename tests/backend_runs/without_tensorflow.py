"""`python without_tensorflow.py SCRIPT ARGS...`: run SCRIPT as __main__ with TensorFlow, TFDS and cleverhans
unimportable, as in a venv that has only `arnkit[jax]` (what a GPU machine without TensorFlow offers)."""

import runpy
import sys

for name in ("tensorflow", "tensorflow_datasets", "cleverhans"):
    sys.modules[name] = None  # import raises ImportError; importlib.util.find_spec answers None

script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
