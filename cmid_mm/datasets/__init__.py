from .rs_image_folder import RSImageFolder  # noqa: F401
from .transforms import *  # noqa: F401,F403
