"""`python -m deepfake_hf.cli` runs the command line."""

import sys

from deepfake_hf.cli import main

sys.exit(main())
