import sys

from bazaar.runner.ops.server import main

sys.exit(main())
