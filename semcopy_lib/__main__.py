import sys

from semcopy_lib.cli import main

sys.exit(main())
