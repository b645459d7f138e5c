"""A stand-in for the fork's `model` module, holding only its ModelMode enum.

The diffusion-first nanoGPT fork's [SH] checkpoints store model_args['mode'] as a
pickled enum member that refers to the class `model.ModelMode` (sampler-spec.md 2.2).
tools/train/fork_checkpoints.py puts this folder on sys.path, so that the fixture
checkpoints it writes name exactly that class, as the fork's do; Python code that
reads a fork checkpoint can do the same to unpickle one.

This is not the fork's model.py and holds no model code: our implementation of
the architecture is tools/train/remask_train/model.py.
"""

import enum


class ModelMode(enum.Enum):
    """What a fork model computes; the values are the strings the fork pickles."""

    LANGUAGE_MODEL = "language_model"
    TOKEN_CLASSIFIER = "token_classifier"
    SEQUENCE_SCORER = "sequence_scorer"
