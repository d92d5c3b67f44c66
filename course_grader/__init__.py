"""What instructors run: the course's wrapper around nbgrader.

    course release             regenerate assignments/ from solutions/
    course autograde DIR       grade every submission found in DIR
    course feedback            feedback HTML with hidden tests stripped
    course grades              one CSV row per student, notebook and graded cell
    course check NOTEBOOK      run a notebook's visible tests, as a student would
    course demo                the README's main job: release, grade the examples, print grades

Learning code (the rest of course_utils) never imports this package.
"""
