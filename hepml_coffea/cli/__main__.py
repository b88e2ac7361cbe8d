"""``python -m hepml_coffea.cli``."""

import sys

from hepml_coffea.cli.main import main

sys.exit(main())
