"""Make ``import minicnn`` find the copy in this folder (the one you are editing)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path[:1] != [HERE]:
    sys.path.insert(0, HERE)
