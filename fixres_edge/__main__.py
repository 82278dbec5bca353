import sys

from fixres_edge.cli import main

sys.exit(main())
