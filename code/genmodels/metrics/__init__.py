r"""The judges: a digit classifier, the Fréchet distance on its features, class and mode counts.

There are no Inception weights to download here, and Inception was made for 299×299 photographs, not
28×28 digits. So the package trains its own small :class:`MNISTClassifier` and ships its weights
(``genmodels/weights/mnist_classifier.pt``; provenance in ``genmodels/weights/README.md``). On top of it:

* :mod:`.frechet`: the **Fréchet classifier distance (FCD)**, the Fréchet inception distance (FID,
  Heusel et al. 2017) computed on the classifier's penultimate-layer features instead of Inception's. It is
  *not* comparable with FID numbers in papers; it is comparable with itself, at the same number of images.
* :mod:`.coverage`: which digits a generator draws and how evenly (:func:`class_histogram`,
  :func:`classes_covered`, :func:`kl_to_uniform`), and which modes of the 2-D mixtures of
  :mod:`genmodels.gan_mixtures` it reaches (:func:`mode_coverage`).
* :mod:`.per_class`: whether a conditional generator draws the class it is asked for
  (:func:`conditional_accuracy`), how well per class (:func:`per_class_fcd`), and its classes against an
  unconditional generator's (:func:`compare_class_histograms`).
"""

from .classifier import (
    DEFAULT_CLASSIFIER_PATH,
    ClassifierConfig,
    MNISTClassifier,
    evaluate_classifier,
    load_classifier,
    save_classifier,
    train_classifier,
    train_classifier_command,
)
from .coverage import class_histogram, classes_covered, kl_to_uniform, mode_coverage, score_counts, score_mixture_runs
from .frechet import classifier_features, frechet_classifier_distance, frechet_distance
from .per_class import compare_class_histograms, conditional_accuracy, per_class_fcd

__all__ = [
    "DEFAULT_CLASSIFIER_PATH",
    "ClassifierConfig",
    "MNISTClassifier",
    "evaluate_classifier",
    "load_classifier",
    "save_classifier",
    "train_classifier",
    "train_classifier_command",
    "class_histogram",
    "classes_covered",
    "kl_to_uniform",
    "mode_coverage",
    "score_mixture_runs",
    "score_counts",
    "classifier_features",
    "frechet_classifier_distance",
    "frechet_distance",
    "conditional_accuracy",
    "per_class_fcd",
    "compare_class_histograms",
]
