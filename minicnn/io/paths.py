"""Checks on a file about to be written, made before any work, so an error names the user's path."""
import os

__all__ = ["check_output_path"]


def check_output_path(path, who):
    """``path`` as a string, once its folder exists and is writable and it is not a folder.

    Without this a missing folder shows up only at the end, as the name of the temporary
    file the writer opens beside the target.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{who}: cannot write {path}: its folder {folder} does not exist "
                                f"(create it first)")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{who}: cannot write {path}: {folder} is not a folder")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{who}: {path} is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{who}: cannot write {path}: the folder {folder} is not writable")
    return path
