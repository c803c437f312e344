import sys

from voxline.cli import main

sys.exit(main())
