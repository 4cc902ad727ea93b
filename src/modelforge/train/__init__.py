"""Training: the readable loop, optimizers/schedules/losses by name, and the task recipes.

`modelforge.train` is both this package and the API call `modelforge.train(config)`: Python
rebinds a package attribute to its subpackage on import, so a plain function of that name
would vanish the first time `modelforge.train.loop` is imported. The package is made
callable instead, forwarding to `modelforge.api.train`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableTrainPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from modelforge.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableTrainPackage
