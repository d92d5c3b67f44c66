"""Reference classifiers for assignment 1 (kNN, linear SVM, softmax).

Students write these in the assignment-1 notebooks; the course keeps its own versions here so
later notebooks (image features) can use them and hidden tests can compare against them. A
solution cell that imports from this package scores 0 (see grading/shortcuts.py).
"""
from .k_nearest_neighbor import KNearestNeighbor
from .linear_classifier import LinearClassifier
from .linear_svm import LinearSVM, svm_loss_naive, svm_loss_vectorized
from .softmax import Softmax, softmax_loss_naive, softmax_loss_vectorized

__all__ = ["KNearestNeighbor",
           "LinearClassifier", "LinearSVM", "svm_loss_naive", "svm_loss_vectorized",
           "Softmax", "softmax_loss_naive", "softmax_loss_vectorized"]
