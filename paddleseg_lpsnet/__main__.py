import sys

from paddleseg_lpsnet.cli import main

sys.exit(main())
