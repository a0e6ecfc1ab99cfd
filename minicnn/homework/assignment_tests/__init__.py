"""Test templates of the homework parts (``minicnn.assignment``); copied into OUT/tests/."""
