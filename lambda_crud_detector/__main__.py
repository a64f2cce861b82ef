"""``python -m lambda_crud_detector``: the same command as the installed ``lambda-crud-detector``."""

import sys

from lambda_crud_detector.cli import main

sys.exit(main())
