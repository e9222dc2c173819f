import sys

from .runner import main

# The guard matters: vLLM's spawned workers re-import the main module.
if __name__ == "__main__":
    sys.exit(main())
