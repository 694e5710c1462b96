"""Shared infrastructure of the curriculum: data, training loop, plots, test helpers.

Which modules a level may import (DESIGN.md section 4):

- L1 (NumPy) implementation files may import only the NumPy-only modules:
  `utils.cli`, `utils.data_loaders` (its NumPy functions), `utils.visualization`.
  They never import torch at load time; a test checks this.
- L2 and L3 may import everything here, `utils.training_utils` included.
- `utils.testing` is for tests and exercise checks.
"""

from utils.lessons import import_lesson

__all__ = ["import_lesson"]
