"""The homework generator (assignment.py) and the tests it ships to students (assignment_tests/)."""
