"""`python -m nf_auto_runner.ops` runs the ops CLI."""

import sys

from nf_auto_runner.ops.cli import main

sys.exit(main())
