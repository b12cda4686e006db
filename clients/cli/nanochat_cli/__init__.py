"""nanochat CLI (see main.py). Launched by build/bin/nanochat."""
from .main import main  # noqa: F401
