"""``python -m karet_api.cli``, as ``karet dev`` starts its Celery workers."""

import sys

from karet_api.cli import main

sys.exit(main())
