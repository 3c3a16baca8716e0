from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import (CheckpointIntegrityError, NonFiniteStateError, SafeRunner,  # noqa: F401
                     build_runner)
