"""remask_train: our PyTorch model of the fork (model.py) and the remask/1 file writer (rmfile.py)."""
