"""course_utils: the layer library, training loop and data loaders of the course.

Everything here runs on numpy arrays, or on cupy arrays when the cupy backend is active
(see `course_utils.backend`). Importing the package never imports cupy.
"""
__version__ = "0.1.0"
