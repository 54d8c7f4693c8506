import sys

from opsdrill.cli import main

sys.exit(main())
