"""The registered model's code (MLflow "models from code"): MLflow runs this file to build the pyfunc,
instead of unpickling an object. See training/registry.py."""

import mlflow.models

from training.registry import TextGenerator

mlflow.models.set_model(TextGenerator())
