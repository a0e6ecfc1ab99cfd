"""Test templates of the homework parts (``minicnn.homework.assignment``); copied into OUT/tests/."""
