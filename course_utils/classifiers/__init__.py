"""Reference classifiers for assignment 1 (kNN, linear SVM, softmax).

Students write these in the assignment-1 notebooks; the course keeps its own versions here so
later notebooks (image features) can use them and hidden tests can compare against them. A
solution cell that imports from this package scores 0 (see grading/shortcuts.py).
"""
from .linear_classifier import LinearClassifier

__all__ = ["LinearClassifier"]
